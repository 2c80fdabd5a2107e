"""Request ids on every response: `x-request-id` (OpenAI's header) and `request-id` (Anthropic's).

The simulator has its own copy rather than batchway's, so it never shares a bug with the code it tests.
"""

import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(16)
        # Kept in the request state so error envelopes that carry the id (Anthropic's) can use it.
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append("x-request-id", request_id)
                headers.append("request-id", request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(request: Request) -> str:
    """This request's id, as sent in its response headers."""
    return str(request.scope.get("state", {}).get("request_id", ""))
