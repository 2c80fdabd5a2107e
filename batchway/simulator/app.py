"""The simulator app: every simulated API on one port, plus `/_simulator/...` test hooks.

Each API is an `Upstream` (routers + state) built in `build_upstreams`; the app counts calls to
them, renders errors in the envelope of the API whose path was hit, and lets tests read and change
the runtime config. Test hooks (no auth):
- `GET /_simulator/config`, `POST /_simulator/config` (runtime knobs, see `SimulatorConfig`)
- `GET /_simulator/calls` (per API, per route: calls received), `DELETE /_simulator/calls` (reset)
- whatever each API adds, e.g. `GET /_simulator/batches`, `GET /_simulator/anthropic/batches`,
  `GET /_simulator/chat/stats`
"""

import time
from typing import Any

import fastapi
import pydantic
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp

from batchway.simulator.anthropic_batches import (
    ANTHROPIC_PATH_PREFIX,
    create_message_batches_control_router,
    create_message_batches_router,
)
from batchway.simulator.anthropic_errors import ANTHROPIC_DIALECT
from batchway.simulator.anthropic_store import AnthropicStore
from batchway.simulator.calls import CallCounter
from batchway.simulator.chat import ChatUpstream, create_chat_control_router, create_chat_router
from batchway.simulator.config import ConfigUpdate, SimulatorConfig
from batchway.simulator.connection_drop import DropConnectionMiddleware
from batchway.simulator.errors import OPENAI_DIALECT, ErrorDialect, SimulatorError, bad_request
from batchway.simulator.middleware import RequestIdMiddleware, request_id
from batchway.simulator.openai_batches import create_batches_control_router, create_batches_router
from batchway.simulator.openai_common import openai_caller, read_json_body
from batchway.simulator.openai_files import create_files_router
from batchway.simulator.openai_store import OpenAIStore
from batchway.simulator.responses import json_response
from batchway.simulator.upstream import Upstream


def build_upstreams(config: SimulatorConfig) -> list[Upstream]:
    """Every simulated API. Each loads its state from `config.data_dir`."""
    openai_store = OpenAIStore(config)
    caller = openai_caller(config)
    anthropic_store = AnthropicStore(config)
    chat = ChatUpstream(config)
    return [
        Upstream(
            name="openai",
            routers=(
                create_files_router(openai_store, caller),
                create_batches_router(openai_store, config, caller),
            ),
            settle=openai_store.settle,
            control_router=create_batches_control_router(openai_store),
        ),
        Upstream(
            name="anthropic",
            routers=(create_message_batches_router(anthropic_store, config),),
            settle=anthropic_store.settle,
            control_router=create_message_batches_control_router(anthropic_store),
            path_prefix=ANTHROPIC_PATH_PREFIX,
            error_dialect=ANTHROPIC_DIALECT,
        ),
        # The synchronous chat/embeddings/... API with rate limits and faults. Its calls count under
        # "openai" too: it is the same API surface, the one fan-out providers copy.
        Upstream(
            name="openai",
            routers=(create_chat_router(chat),),
            control_router=create_chat_control_router(chat),
        ),
    ]


class _SimulatorApp(fastapi.FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside even Starlette's error middleware, so a simulated connection reset reaches the socket.
        return DropConnectionMiddleware(super().build_middleware_stack())


def create_simulator_app(config: SimulatorConfig) -> fastapi.FastAPI:
    upstreams = build_upstreams(config)
    calls = CallCounter()
    app = _SimulatorApp(title="batchway upstream simulator", docs_url=None, redoc_url=None)
    app.add_middleware(RequestIdMiddleware)
    for upstream in upstreams:
        for router in upstream.routers:
            app.include_router(router, dependencies=[Depends(calls.register(upstream.name, router))])
        if upstream.control_router is not None:
            app.include_router(upstream.control_router)
    _add_error_handlers(app, upstreams)
    app.include_router(_control_router(config, upstreams, calls))
    return app


def _add_error_handlers(app: fastapi.FastAPI, upstreams: list[Upstream]) -> None:
    """Every failure looks like the upstream's own error, never a bare 422 or 500."""
    dialects = [(u.path_prefix, u.error_dialect) for u in upstreams if u.path_prefix and u.error_dialect]

    def dialect(request: Request) -> ErrorDialect:
        path = request.url.path
        return next((d for prefix, d in dialects if path.startswith(prefix)), OPENAI_DIALECT)

    @app.exception_handler(SimulatorError)
    async def _simulator_error(request: Request, exc: SimulatorError) -> Response:
        return exc.response(request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
        error = dialect(request).invalid_param(".".join(loc) or None, first.get("msg", "invalid value"))
        return error.response(request_id(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})"
        else:
            message = str(exc.detail)
        return dialect(request).error(exc.status_code, message).response(request_id(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return dialect(request).error(500, f"The simulator failed: {exc!r}").response(request_id(request))


def _control_router(
    config: SimulatorConfig, upstreams: list[Upstream], calls: CallCounter
) -> fastapi.APIRouter:
    router = fastapi.APIRouter(prefix="/_simulator")

    def config_json() -> dict[str, Any]:
        return config.model_dump(mode="json", exclude={"api_key"})  # never echo the key

    @router.get("/config")
    async def get_config() -> Response:
        return json_response(config_json())

    @router.post("/config")
    async def set_config(request: Request) -> Response:
        try:
            changes = ConfigUpdate.model_validate(await read_json_body(request)).validated_changes(config)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            message = f"Invalid '{param}': {first['msg']}." if param else f"Invalid config: {first['msg']}."
            raise bad_request(message, param) from None
        # Settle every object under the old settings first, so new speeds apply from now on.
        now = time.time()
        for upstream in upstreams:
            if upstream.settle is not None:
                upstream.settle(now)
        for name, value in changes.items():
            setattr(config, name, value)  # in place: every part of the simulator shares this object
        return json_response(config_json())

    @router.get("/calls")
    async def get_calls() -> Response:
        return json_response(calls.snapshot())

    @router.delete("/calls")
    async def reset_calls() -> Response:
        calls.reset()
        return json_response(calls.snapshot())

    return router
