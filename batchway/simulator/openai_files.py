"""Routes of the simulated OpenAI Files API (`/v1/files...`), contract §1."""

import secrets
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.responses import FileResponse, Response

from batchway.simulator.errors import bad_request, not_found
from batchway.simulator.multipart import UploadSink
from batchway.simulator.openai_common import cursor_seq, paginate, parse_expires_after
from batchway.simulator.openai_objects import FILE_TTL_SECONDS
from batchway.simulator.openai_store import OpenAIStore
from batchway.simulator.responses import json_response

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def create_files_router(store: OpenAIStore, caller: Callable[[Request], str]) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/files", name="files.create")
    async def create_file(request: Request, owner: str = Depends(caller)) -> Response:
        content_type, options = parse_options_header(request.headers.get("content-type"))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            raise bad_request("Invalid Content-Type header: expected multipart/form-data with a boundary.")
        sink = UploadSink(store.tmp_dir / f"upload-{secrets.token_hex(12)}")
        try:
            # python-multipart's callbacks TypedDict exists only under TYPE_CHECKING, hence the ignore.
            parser = MultipartParser(options[b"boundary"], sink.callbacks())  # type: ignore[arg-type]
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except FormParserError:
            sink.close()
            sink.tmp_path.unlink(missing_ok=True)
            raise bad_request("The multipart body could not be parsed.") from None
        except BaseException:
            sink.close()
            sink.tmp_path.unlink(missing_ok=True)
            raise
        sink.close()
        try:
            purpose = sink.fields.get("purpose")
            if purpose is None:
                raise bad_request(
                    "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter"
                )
            if purpose not in UPLOAD_PURPOSES:
                raise bad_request(
                    f"Invalid value for 'purpose': {purpose!r}. "
                    f"Supported values are: {', '.join(UPLOAD_PURPOSES)}.",
                    "purpose",
                )
            if sink.filename is None:
                raise bad_request("Missing required parameter: 'file'.", "file", "missing_required_parameter")
            if purpose == "batch" and not sink.filename.lower().endswith(".jsonl"):
                # Real OpenAI rejects this too, e.g. raw bytes that the SDK names "upload".
                raise bad_request("Invalid file format for Batch API. Must be .jsonl")
            ttl = parse_expires_after(
                sink.fields.get("expires_after[anchor]"),
                sink.fields.get("expires_after[seconds]"),
                "expires_after",
            )
            if ttl is None and purpose == "batch":
                ttl = FILE_TTL_SECONDS
            stored = store.add_file(owner, sink.tmp_path, sink.filename, purpose, sink.size, ttl)
        except BaseException:
            sink.tmp_path.unlink(missing_ok=True)
            raise
        return json_response(stored.to_json())

    @router.get("/files", name="files.list")
    async def list_files(
        owner: str = Depends(caller),
        purpose: str | None = None,
        limit: int = Query(10_000, ge=1, le=10_000),
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> Response:
        descending = order == "desc"
        files = [
            f for f in store.files.values() if f.owner == owner and (purpose is None or f.purpose == purpose)
        ]
        files.sort(key=lambda f: f.seq, reverse=descending)
        return json_response(paginate(files, cursor_seq(store.seq_by_id, after), descending, limit))

    @router.get("/files/{file_id}", name="files.retrieve")
    async def retrieve_file(file_id: str, owner: str = Depends(caller)) -> Response:
        return json_response(store.get_file(file_id, owner).to_json())

    @router.delete("/files/{file_id}", name="files.delete")
    async def delete_file(file_id: str, owner: str = Depends(caller)) -> Response:
        store.delete_file(store.get_file(file_id, owner))
        return json_response({"id": file_id, "object": "file", "deleted": True})

    @router.get("/files/{file_id}/content", name="files.content")
    async def file_content(file_id: str, owner: str = Depends(caller)) -> Response:
        stored = store.get_file(file_id, owner)
        if not stored.path.exists():
            raise not_found("File", file_id)
        return FileResponse(stored.path, media_type="application/octet-stream", filename=stored.filename)

    return router
