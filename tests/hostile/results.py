"""Result-file lines: the good ones (contract §2.7/§2.8, §5.1) and the scripted corruptions."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from tests.hostile.faults import VICTIM_CORRUPTIONS

PROMPT_TOKENS = 5
COMPLETION_TOKENS = 3
CANCELLED = {"code": "batch_cancelled", "message": "This request was cancelled before it could be executed."}


def chat_completion(custom_id: str, model: str, created: int) -> dict[str, Any]:
    """A small but complete `chat.completion` body, usage included."""
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"ok: {custom_id}", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
        "system_fingerprint": None,
    }


def good_line(custom_id: Any, model: str, created: int) -> dict[str, Any]:
    body = chat_completion(str(custom_id), model, created)
    response = {"status_code": 200, "request_id": "req_" + secrets.token_hex(16), "body": body}
    return {
        "id": "batch_req_" + secrets.token_hex(16),
        "custom_id": custom_id,
        "response": response,
        "error": None,
    }


def cancelled_line(custom_id: str) -> dict[str, Any]:
    return {
        "id": "batch_req_" + secrets.token_hex(16),
        "custom_id": custom_id,
        "response": None,
        "error": CANCELLED,
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _victim_line(corruption: str, custom_id: str, model: str, created: int) -> bytes:
    """The one line (or nothing) that replaces `custom_id`'s good line."""
    line = good_line(custom_id, model, created)
    if corruption == "error_string":
        return orjson.dumps({**line, "response": None, "error": "boom"}) + b"\n"
    if corruption == "json_array":
        return orjson.dumps([custom_id, "not an object"]) + b"\n"
    if corruption == "custom_id_list":
        return orjson.dumps({**line, "custom_id": [custom_id]}) + b"\n"
    if corruption == "usage_strings":
        line["response"]["body"]["usage"] = {
            "prompt_tokens": "n/a",
            "completion_tokens": "n/a",
            "total_tokens": "?",
        }
        return orjson.dumps(line) + b"\n"
    if corruption == "missing_status_code":
        del line["response"]["status_code"]
        return orjson.dumps(line) + b"\n"
    if corruption == "truncated_last_line":
        whole = orjson.dumps(line)
        return whole[: len(whole) // 2]
    return b""  # missing_line


def corrupted_output(
    custom_ids: list[str], corruptions: tuple[str, ...], model: str, created: int
) -> tuple[bytes, dict[str, str]]:
    """The output file of a completed batch under `corruptions`, and which custom_id got which.

    Victim corruptions take one input custom_id each, in input order; with fewer lines than victims
    the surplus corruptions are skipped (and absent from the returned map). The truncated line is
    always written last.
    """
    victims = [c for c in dict.fromkeys(corruptions) if c in VICTIM_CORRUPTIONS]
    applied = dict(zip(victims, custom_ids, strict=False))
    victim_ids = set(applied.values())
    good = [
        orjson.dumps(good_line(cid, model, created)) + b"\n" for cid in custom_ids if cid not in victim_ids
    ]
    out = list(good)
    if "duplicate_line" in corruptions and good:
        out.append(good[0])
        applied["duplicate_line"] = orjson.loads(good[0])["custom_id"]
    if "unknown_custom_id" in corruptions:
        stranger = "not-in-input-" + secrets.token_hex(4)
        out.append(orjson.dumps(good_line(stranger, model, created)) + b"\n")
        applied["unknown_custom_id"] = stranger
    for corruption, cid in applied.items():
        if corruption in VICTIM_CORRUPTIONS and corruption != "truncated_last_line":
            out.append(_victim_line(corruption, cid, model, created))
    if "truncated_last_line" in applied:
        out.append(_victim_line("truncated_last_line", applied["truncated_last_line"], model, created))
    return b"".join(out), applied
