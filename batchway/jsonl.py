"""Streaming JSONL: split byte chunks into numbered lines and write objects one line each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import orjson

CHUNK_SIZE = 1024 * 1024


def read_chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def iter_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its newline). A final newline ends the last line;
    it does not start an empty one."""
    pending = b""
    number = 0
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            yield number, line.removesuffix(b"\r")
    if pending:
        yield number + 1, pending.removesuffix(b"\r")


def iter_objects(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Parse every non-blank line of a file already known to be valid JSONL."""
    for number, line in iter_lines(read_chunks(stream)):
        if line.strip():
            yield number, orjson.loads(line)


def dumps_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"
