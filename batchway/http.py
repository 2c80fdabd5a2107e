"""ASGI pieces shared by batchway's HTTP servers (the API and the simulator)."""

from __future__ import annotations

import random

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestIdMiddleware:
    """Adds `x-request-id` to every response, as OpenAI does (the SDK exposes it as `request_id`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Not a secret, only unique: the Mersenne generator, not a getrandom() syscall per request.
        request_id = f"req_{random.getrandbits(128):032x}"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)
