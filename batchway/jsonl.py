"""Streaming JSONL: split byte chunks into numbered lines and write objects one line each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

CHUNK_SIZE = 1024 * 1024


def read_chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


class LineTooLong(ValueError):
    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"Line {line} is longer than {limit} bytes.")
        self.line = line
        self.limit = limit


def iter_lines(chunks: Iterable[bytes], max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its newline). A final newline ends the last line;
    it does not start an empty one. Memory is bounded by the longest line, which `max_line_bytes` caps
    (a file with no newline at all would otherwise be buffered whole)."""
    partial = bytearray()
    number = 0
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            number += 1
            if partial:
                partial += memoryview(chunk)[start:end]
                line, partial = bytes(partial), bytearray()
            else:
                line = chunk[start:end]
            if max_line_bytes is not None and len(line) > max_line_bytes:
                raise LineTooLong(number, max_line_bytes)
            yield number, line.removesuffix(b"\r")
            start = end + 1
        partial += memoryview(chunk)[start:]
        if max_line_bytes is not None and len(partial) > max_line_bytes:
            raise LineTooLong(number + 1, max_line_bytes)
    if partial:
        yield number + 1, bytes(partial).removesuffix(b"\r")


def iter_objects(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Parse every non-blank line of a file already known to be valid JSONL."""
    for number, line in iter_lines(read_chunks(stream)):
        if line.strip():
            yield number, orjson.loads(line)


def dumps_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"
