"""The HTTP face of the hostile upstream: OpenAI's Files + Batches routes, fault injection, control routes."""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import fastapi
import orjson
import pydantic
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.hostile.faults import Faults, Timing
from tests.hostile.state import TAG, TERMINAL, ApiError, Store

_STUCK_FATES = ("stay_finalizing", "unknown_status")


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json(exc.envelope(), exc.status)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ApiError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


class _NoAnswer(Response):
    """Returned after the connection was aborted: there is nobody left to answer."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class _Outermost:
    """Tags every answer with `x-request-id` and hands handlers the raw connection, so a "lost" answer can
    really hang up. uvicorn's h11 `send` is a bound method of the request cycle, which owns the transport."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["hostile.transport"] = getattr(getattr(send, "__self__", None), "transport", None)
        request_id = ("req_" + secrets.token_hex(16)).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class HostileUpstream:
    """An OpenAI Files + Batches upstream that misbehaves as `faults` say. Serve `.app` with uvicorn."""

    def __init__(
        self,
        faults: Faults | Mapping[str, Any] | None = None,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._faults = faults if isinstance(faults, Faults) else Faults.model_validate(faults or {})
        self.store = Store(timing or Timing())
        self.clock = clock
        self._fail_ticks: collections.Counter[str] = collections.Counter()  # per route
        self.app: ASGIApp = _Outermost(self._build_app())

    # -- the Python side of the control routes (safe to call from the test's thread) ------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, **changes: Any) -> Faults:
        """Merge `changes` into the current faults; `fail_every` counting restarts."""
        with self.store.lock:
            self._faults = Faults.model_validate({**self._faults.model_dump(), **changes})
            self._fail_ticks.clear()
            return self._faults

    def reset_faults(self) -> Faults:
        with self.store.lock:
            self._faults = Faults()
            self._fail_ticks.clear()
            return self._faults

    def stats(self) -> dict[str, Any]:
        with self.store.lock:
            return self.store.stats.to_json()

    # -- faults applied to every /v1 call ------------------------------------------------------------

    async def _call_faults(self, request: Request) -> None:
        route, faults = request.scope["route"].name, self._faults
        with self.store.lock:
            self.store.stats.calls[route] += 1
        if faults.stall_seconds and (faults.stall_routes is None or route in faults.stall_routes):
            await asyncio.sleep(faults.stall_seconds)
        if faults.fail_every and (faults.fail_routes is None or route in faults.fail_routes):
            with self.store.lock:
                # Counted per route: a global count can lock onto a client's fixed call pattern (e.g. a
                # retried create that always lands on the failing parity) and never let it through.
                self._fail_ticks[route] += 1
                fail = self._fail_ticks[route] % faults.fail_every == 0
                if fail:
                    self.store.stats.failed_calls[route] += 1
            if fail:
                raise ApiError(
                    503, "The server is overloaded; please retry. (hostile: fail_every)", "server_error"
                )

    async def _lose_answer(self, request: Request, faults: Faults) -> Response:
        """The batch exists upstream, but the caller never learns it: a 5xx, a hang-up, or a hang."""
        if faults.lost_create in ("500", "503"):
            message = "The server had an error processing your request."
            return _error(ApiError(int(faults.lost_create), message, "server_error"))
        transport = request.scope.get("hostile.transport")
        if transport is None:
            raise RuntimeError("dropping a connection needs uvicorn's h11 server (see tests/servers.py)")
        deadline = time.monotonic() + faults.hang_seconds
        while faults.lost_create == "hang" and not transport.is_closing() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        transport.abort()
        await asyncio.sleep(0.01)  # let uvicorn notice, so it does not try to answer 500 for us
        return _NoAnswer()

    # -- routes -------------------------------------------------------------------------------------

    def _build_app(self) -> fastapi.FastAPI:
        store, app = self.store, fastapi.FastAPI(openapi_url=None)
        v1 = APIRouter(prefix="/v1", dependencies=[Depends(self._call_faults)])

        @app.exception_handler(ApiError)
        async def _api_error(request: Request, exc: ApiError) -> Response:
            return _error(exc)

        @app.exception_handler(RequestValidationError)
        async def _bad_params(request: Request, exc: RequestValidationError) -> Response:
            return _error(ApiError(400, f"Invalid request: {exc.errors()[0].get('msg', 'bad parameter')}"))

        @app.exception_handler(StarletteHTTPException)
        async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
            return _error(ApiError(exc.status_code, str(exc.detail)))

        @v1.post("/files", name="files.create")
        async def create_file(request: Request) -> Response:
            form = await request.form()
            upload, purpose = form.get("file"), form.get("purpose")
            if not isinstance(purpose, str):
                raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "Missing required parameter: 'file'.", param="file")
            stored = store.add_file(upload.filename or "upload", purpose, await upload.read(), self.clock())
            with store.lock:
                store.stats.file_uploads += 1
            return _json(stored.to_json())

        @v1.get("/files/{file_id}", name="files.retrieve")
        async def retrieve_file(file_id: str) -> Response:
            return _json(store.get_file(file_id).to_json())

        @v1.get("/files/{file_id}/content", name="files.content")
        async def file_content(file_id: str) -> Response:
            return Response(store.get_file(file_id).data, media_type="application/octet-stream")

        @v1.delete("/files/{file_id}", name="files.delete")
        async def delete_file(file_id: str) -> Response:
            with store.lock:
                store.files.pop(store.get_file(file_id).id)
            return _json({"id": file_id, "object": "file", "deleted": True})

        @v1.post("/batches", name="batches.create")
        async def create_batch(request: Request) -> Response:
            body, faults = await _json_body(request), self._faults
            for name in ("input_file_id", "endpoint", "completion_window"):
                if not isinstance(body.get(name), str):
                    raise ApiError(400, f"Missing required parameter: '{name}'.", param=name)
            metadata = body.get("metadata")
            if metadata is not None and not (
                isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
            ):
                raise ApiError(400, "Invalid 'metadata': expected a map of strings.", param="metadata")
            fate = faults.cancel if faults.cancel in _STUCK_FATES else None
            if faults.fail_midway:
                fate = "fail_midway"
            now, key = self.clock(), (metadata or {}).get(TAG, "")
            with store.lock:
                batch = store.create_batch(body, now, fate, faults.corruptions)
                store.stats.batches_created[key] += 1
                lose = faults.lost_create is not None and store.stats.lost_creates[key] < faults.lost_creates
                if lose:
                    store.stats.lost_creates[key] += 1
                    for n in range(faults.decoy_batches):  # newer batches push the lost one off page 1
                        store.create_batch({**body, "metadata": {"hostile_decoy": str(n)}}, now)
                    store.stats.decoys_created += faults.decoy_batches
            if lose:
                return await self._lose_answer(request, faults)
            return _json(batch.to_json())

        @v1.get("/batches", name="batches.list")
        async def list_batches(after: str | None = None, limit: int = 20) -> Response:
            if not 1 <= limit <= 100:
                raise ApiError(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
            return _json(store.list_batches(after, limit, self.clock()))

        @v1.get("/batches/{batch_id}", name="batches.retrieve")
        async def retrieve_batch(batch_id: str) -> Response:
            return _json(store.get_batch(batch_id, self.clock()).to_json())

        @v1.post("/batches/{batch_id}/cancel", name="batches.cancel")
        async def cancel_batch(batch_id: str) -> Response:
            faults, now = self._faults, self.clock()
            with store.lock:
                batch = store.get_batch(batch_id, now)
                store.stats.cancels[batch_id] += 1
                if faults.cancel == "refuse":
                    raise ApiError(400, f"cannot cancel batch {batch_id} right now (hostile: refuse).")
                if batch.status in TERMINAL:
                    raise ApiError(400, f"Cannot cancel a batch with status '{batch.status}'.")
                # A stuck fate swallows the cancel; a batch already cancelling answers as it is.
                if batch.fate is None and "cancelling_at" not in batch.times:
                    batch.times["cancelling_at"] = now
                    batch.cancel_ignored = faults.cancel == "ignore"
                    store.advance(batch, now)
                return _json(batch.to_json())

        @app.get("/_hostile/faults")
        async def get_faults() -> Response:
            return _json(self._faults.model_dump(mode="json"))

        @app.post("/_hostile/faults")
        async def update_faults(request: Request) -> Response:
            try:
                return _json(self.set_faults(**await _json_body(request)).model_dump(mode="json"))
            except pydantic.ValidationError as exc:
                raise ApiError(400, f"Invalid faults: {exc.errors()[0]['msg']}") from None

        @app.delete("/_hostile/faults")
        async def clear_faults() -> Response:
            return _json(self.reset_faults().model_dump(mode="json"))

        @app.get("/_hostile/stats")
        async def get_stats() -> Response:
            return _json(self.stats())

        app.include_router(v1)
        return app
