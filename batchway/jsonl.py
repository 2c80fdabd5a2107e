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


class LineSplitter:
    """Splits a byte stream fed chunk by chunk into numbered lines (without their newline). Memory is
    bounded by the longest line, which `max_line_bytes` caps (a stream with no newline at all would
    otherwise be buffered whole). A final newline ends the last line; it does not start an empty one."""

    def __init__(self, max_line_bytes: int | None = None) -> None:
        self.max_line_bytes = max_line_bytes
        self.number = 0
        self.consumed = 0  # bytes of the lines completed since a caller last reset it, newlines included
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self.number += 1
            if self._partial:
                self._partial += memoryview(chunk)[start:end]
                line, self._partial = bytes(self._partial), bytearray()
            else:
                line = chunk[start:end]
            if self.max_line_bytes is not None and len(line) > self.max_line_bytes:
                raise LineTooLong(self.number, self.max_line_bytes)
            self.consumed += len(line) + 1
            yield self.number, line.removesuffix(b"\r")
            start = end + 1
        self.feed_partial(chunk[start:])

    def feed_partial(self, data: bytes) -> None:
        """Bytes of a line that goes on in the next chunk."""
        self._partial += data
        if self.max_line_bytes is not None and len(self._partial) > self.max_line_bytes:
            raise LineTooLong(self.number + 1, self.max_line_bytes)

    def finish(self) -> Iterator[tuple[int, bytes]]:
        if self._partial:
            self.number += 1
            yield self.number, bytes(self._partial).removesuffix(b"\r")
            self._partial = bytearray()


def iter_lines(chunks: Iterable[bytes], max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its newline) of a whole stream given as chunks."""
    splitter = LineSplitter(max_line_bytes)
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.finish()


def iter_objects(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Parse every non-blank line of a file already known to be valid JSONL."""
    for number, line in iter_lines(read_chunks(stream)):
        if line.strip():
            yield number, orjson.loads(line)


def dumps_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def iter_line_spans(stream: BinaryIO, max_line_bytes: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """Yield (1-based line number, byte offset where the line starts, line without its newline or
    carriage return), so a later reader can seek straight to a line."""
    splitter = LineSplitter(max_line_bytes)
    offset = 0
    for chunk in read_chunks(stream):
        position = 0
        while (end := chunk.find(b"\n", position)) != -1:
            for number, line in splitter.feed(chunk[position : end + 1]):
                yield number, offset, line
            offset += splitter.consumed
            splitter.consumed = 0
            position = end + 1
        splitter.feed_partial(chunk[position:])
    for number, line in splitter.finish():
        yield number, offset, line
