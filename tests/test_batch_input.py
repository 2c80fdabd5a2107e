"""Line splitting and the batch input checks, without servers."""

from __future__ import annotations

import io

import pytest

from batchway.batch_input import InputFileError, InputScanner
from batchway.jsonl import LineTooLong, iter_line_spans, iter_lines
from tests.batch_helpers import chat_line, jsonl


def split(data: bytes, size: int, limit: int | None = None) -> list[tuple[int, bytes]]:
    return list(iter_lines((data[i : i + size] for i in range(0, len(data), size)), limit))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_lines_survive_any_chunking(size: int) -> None:
    data = b'{"a":1}\r\n{"b":2}\n\n{"c":3}'
    assert split(data, size) == [(1, b'{"a":1}'), (2, b'{"b":2}'), (3, b""), (4, b'{"c":3}')]
    assert split(b"x\n", size) == [(1, b"x")]  # a final newline does not start an empty line
    assert split(b"", size) == []


def test_a_line_past_the_cap_stops_the_read_early() -> None:
    with pytest.raises(LineTooLong) as exc:
        split(b"ok\n" + b"y" * 50, size=8, limit=20)
    assert exc.value.line == 2
    endless = (b"z" * 1024 for _ in range(10**6))  # no newline ever: must not buffer it all
    with pytest.raises(LineTooLong):
        list(iter_lines(endless, 4096))


def test_scanner_collects_batch_problems_per_endpoint() -> None:
    lines = [chat_line("a", "1"), chat_line("a", "2"), chat_line("b", "3", model="other")]
    lines.append({**chat_line("c", "4"), "url": "/v1/embeddings"})
    scan = InputScanner(max_lines=10).scan([jsonl(lines)])
    assert scan.line_count == 4 and scan.model == "gpt-4o-mini"
    codes = [(p.code, p.line) for p in scan.problems_for("/v1/chat/completions")]
    assert codes == [("duplicate_custom_id", 2), ("model_mismatch", 3), ("url_mismatch", 4)]


@pytest.mark.parametrize(
    ("data", "code", "line"),
    [
        (b"", "empty_file", None),
        (b'{"a":1}\n   \n', "invalid_json_line", 2),
        (b'{"a": "\xc3\x28"}\n', "invalid_encoding", 1),
        (b'{"a":1}\n"text"\n', "invalid_json_line", 2),
        (b"x" * 100, "line_too_long", 1),
    ],
)
def test_scanner_refuses_files_that_are_not_jsonl(data: bytes, code: str, line: int | None) -> None:
    with pytest.raises(InputFileError) as exc:
        InputScanner(max_lines=10, max_line_bytes=50).scan([data])
    assert (exc.value.code, exc.value.line) == (code, line)


def test_nul_escapes_are_refused_but_the_literal_text_is_not() -> None:
    literal = chat_line("a", "a prompt that mentions \\u0000 as text")
    assert InputScanner(max_lines=10).scan([jsonl([literal])]).line_count == 1
    with pytest.raises(InputFileError) as exc:
        InputScanner(max_lines=10).scan([jsonl([chat_line("b", "a real \x00 byte")])])
    assert "NUL" in exc.value.message


@pytest.mark.parametrize("read_size", [1, 2, 3, 5, 64])
def test_line_spans_give_each_line_its_byte_offset_whatever_the_reads(read_size: int) -> None:
    data = b'{"a":1}\r\n{"b":22}\n\n{"c":333}\n{"d":4}'

    class SmallReads(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(read_size)

    spans = list(iter_line_spans(SmallReads(data)))
    assert [number for number, _, _ in spans] == [1, 2, 3, 4, 5]
    for _, offset, line in spans:
        assert data[offset : offset + len(line)] == line
    assert [line for _, _, line in spans] == [b'{"a":1}', b'{"b":22}', b"", b'{"c":333}', b'{"d":4}']


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (chat_line("x" * 513, "hi"), "custom_id"),
        (chat_line("ok", "hi", model="m" * 257), "body.model"),
        ({**chat_line("ok", "hi"), "url": "/v1/" + "u" * 300}, "url"),
    ],
)
def test_overlong_fields_are_refused_with_their_line(line: dict, field: str) -> None:
    scanner = InputScanner(max_lines=10)
    with pytest.raises(InputFileError) as refused:
        scanner.scan([jsonl([chat_line("first", "hi"), line])])
    assert (refused.value.code, refused.value.line) == ("field_too_long", 2)
    assert field in refused.value.message
