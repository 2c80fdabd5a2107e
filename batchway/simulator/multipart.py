"""Multipart uploads (`POST /v1/files`) streamed straight to disk, so big files never sit in memory."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from python_multipart.multipart import parse_options_header

from batchway.simulator.errors import bad_request

MAX_FORM_FIELD_BYTES = 64 * 1024


class UploadSink:
    """python-multipart callbacks: small text fields in memory, the `file` part written to disk."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self._handle: Any = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._part_name = ""
        self._part_is_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._buffer.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        self._part_is_file = self._part_name == "file" and b"filename" in options
        if self._part_is_file:
            if self.filename is not None:
                raise bad_request("Only one file may be uploaded per request.", "file")
            self.filename = os.path.basename(options[b"filename"].decode("utf-8", "replace")) or "upload"
            self._handle = self.tmp_path.open("wb")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            # Synchronous write of one network chunk (~64 KiB): cheap, and keeps memory flat.
            self._handle.write(data[start:end])
            self.size += end - start
            return
        self._buffer += data[start:end]
        if len(self._buffer) > MAX_FORM_FIELD_BYTES:
            raise bad_request(f"The form field {self._part_name!r} is too large.", self._part_name or None)

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self.close()
        elif self._part_name:
            self.fields[self._part_name] = self._buffer.decode("utf-8", "replace")
