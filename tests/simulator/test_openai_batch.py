"""The OpenAI Files + Batch simulator, driven over real HTTP by the official `openai` SDK."""

import base64
import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import Batch, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from tests.simulator.helpers import API_KEY, RunningSimulator, restart_config, running_simulator

TERMINAL = ("completed", "failed", "expired", "cancelled")
CHAT = "/v1/chat/completions"


# ---------------------------------------------------------------------------------------------------
# helpers


def chat_line(custom_id: str, text: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {
            "model": model,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": text},
            ],
        },
    }


def upload_jsonl(client: OpenAI, lines: list[Any], name: str = "input.jsonl") -> str:
    data = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return client.files.create(file=(name, data.encode()), purpose="batch").id


def create_batch(client: OpenAI, lines: list[Any], endpoint: str = CHAT, **kwargs: Any) -> Batch:
    file_id = upload_jsonl(client, lines)
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **kwargs,
    )


def wait_for(
    client: OpenAI, batch_id: str, predicate: Callable[[Batch], bool], timeout: float = 5.0
) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if predicate(batch):
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last state {batch.status} {batch.request_counts}")
        time.sleep(0.02)


def wait_terminal(client: OpenAI, batch_id: str, timeout: float = 5.0) -> Batch:
    return wait_for(client, batch_id, lambda b: b.status in TERMINAL, timeout)


def read_lines(client: OpenAI, file_id: str | None) -> dict[str | None, dict[str, Any]]:
    """Result file lines keyed by custom_id (the output order is not promised)."""
    assert file_id is not None
    return {
        line["custom_id"]: line for line in map(json.loads, client.files.content(file_id).text.splitlines())
    }


# ---------------------------------------------------------------------------------------------------
# files


def test_file_upload_retrieve_content_list_delete(start: Callable[..., RunningSimulator]) -> None:
    client = start().client()
    # Binary content with CRLFs and boundary-like bytes, larger than one network chunk.
    blob = os.urandom(300_000) + b"\r\n--boundary\r\n" + os.urandom(1000)
    uploaded = client.files.create(file=("blob.bin", blob), purpose="user_data")
    assert uploaded.id.startswith("file-") and len(uploaded.id) == len("file-") + 24
    assert (uploaded.object, uploaded.status, uploaded.bytes) == ("file", "processed", len(blob))
    assert (uploaded.filename, uploaded.purpose, uploaded.expires_at) == ("blob.bin", "user_data", None)
    assert client.files.content(uploaded.id).content == blob

    jsonl = '{"custom_id": "a"}\n{"custom_id": "ü"}'.encode()
    batch_file = client.files.create(file=("in.jsonl", jsonl), purpose="batch")
    assert batch_file.expires_at == batch_file.created_at + 30 * 86400
    assert client.files.retrieve(batch_file.id) == batch_file
    assert client.files.content(batch_file.id).content == jsonl

    short = client.files.create(
        file=("x.jsonl", b"{}\n"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert short.expires_at == short.created_at + 3600

    # Newest first by default; oldest first with order=asc; purpose filter.
    ids = [uploaded.id, batch_file.id, short.id]
    assert [f.id for f in client.files.list()] == ids[::-1]
    assert [f.id for f in client.files.list(order="asc")] == ids
    assert [f.id for f in client.files.list(purpose="batch")] == [short.id, batch_file.id]

    # Paging: the SDK follows `after=<last id>` until has_more is false.
    first_page = client.files.list(limit=2)
    assert [f.id for f in first_page.data] == [short.id, batch_file.id]
    assert first_page.has_more is True
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]  # auto-paging
    raw = httpx.get(
        f"{client.base_url}files",
        params={"limit": 1, "after": short.id},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    assert raw["first_id"] == raw["last_id"] == batch_file.id and raw["has_more"] is True

    deleted = client.files.delete(batch_file.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (batch_file.id, "file", True)
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(batch_file.id)
    assert missing.value.body == {
        "message": f"No such File object: {batch_file.id}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    with pytest.raises(openai.NotFoundError):
        client.files.content(batch_file.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(batch_file.id)
    # A deleted file still works as a paging cursor.
    assert [f.id for f in client.files.list(after=batch_file.id)] == [uploaded.id]


def test_file_upload_validation(start: Callable[..., RunningSimulator]) -> None:
    client = start().client()
    with pytest.raises(openai.BadRequestError) as unnamed:
        client.files.create(file=b'{"a": 1}\n', purpose="batch")  # the SDK names raw bytes "upload"
    assert "Must be .jsonl" in unnamed.value.message
    with pytest.raises(openai.BadRequestError) as bad_purpose:
        client.files.create(file=("a.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad_purpose.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as bad_ttl:
        client.files.create(
            file=("a.jsonl", b"{}"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 5}
        )
    assert bad_ttl.value.param == "expires_after"
    no_file = httpx.post(
        f"{client.base_url}files",
        data={"purpose": "batch"},
        files={"other": ("x", b"y")},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert client.files.list().data == []  # nothing half-stored


# ---------------------------------------------------------------------------------------------------
# batches: lifecycle


def test_batch_completes_with_successes_and_simulated_errors(start: Callable[..., RunningSimulator]) -> None:
    sim = start(lines_per_second=200.0)
    client = sim.client()
    lines = [chat_line(f"ok-{i}", f"hello number {i}") for i in range(4)]
    lines.append(chat_line("bad-400", "please SIMULATE_ERROR_400 now"))
    parts_line = chat_line("bad-503", "x")
    parts_line["body"]["messages"][1]["content"] = [{"type": "text", "text": "SIMULATE_ERROR_503"}]
    lines.append(parts_line)
    lines.append(chat_line("bad-429", "SIMULATE_ERROR_429"))

    created = create_batch(client, lines, metadata={"job": "nightly"})
    assert created.status == "validating"
    assert created.id.startswith("batch_") and len(created.id) == len("batch_") + 32
    assert created.expires_at == created.created_at + 86400
    assert created.request_counts is not None and created.request_counts.total == 0
    assert (created.metadata, created.model, created.errors, created.output_file_id) == (
        {"job": "nightly"},
        "gpt-4o-mini",
        None,
        None,
    )
    # Every Batch key is present on the wire, null where empty.
    raw = client.batches.with_raw_response.retrieve(created.id)
    assert raw.headers["x-request-id"].startswith("req_")
    assert set(json.loads(raw.text)) == set(Batch.model_fields)

    batch = wait_terminal(client, created.id)
    assert batch.status == "completed"
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 7, "completed": 4, "failed": 3}
    assert batch.cancelled_at is None and batch.expired_at is None and batch.failed_at is None

    outputs = read_lines(client, batch.output_file_id)
    assert sorted(outputs) == ["ok-0", "ok-1", "ok-2", "ok-3"]
    prompt_total = completion_total = 0
    for custom_id, line in outputs.items():
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(line["response"]["body"])
        assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
        assert completion.model == "gpt-4o-mini"
        choice = completion.choices[0]
        assert choice.finish_reason == "stop" and choice.logprobs is None
        assert choice.message.role == "assistant"
        assert choice.message.content == f"echo: hello number {custom_id[-1]}"
        assert completion.usage is not None
        # "be brief" (2) + "hello number N" (3); "echo: hello number N" is 4 words.
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 4)
        assert completion.usage.total_tokens == 9
        assert completion.usage.prompt_tokens_details.cached_tokens == 0  # type: ignore[union-attr]
        assert completion.usage.completion_tokens_details.reasoning_tokens == 0  # type: ignore[union-attr]
        prompt_total += completion.usage.prompt_tokens
        completion_total += completion.usage.completion_tokens

    errors = read_lines(client, batch.error_file_id)
    assert sorted(errors) == ["bad-400", "bad-429", "bad-503"]
    expected_types = {
        "bad-400": (400, "invalid_request_error"),
        "bad-429": (429, "rate_limit_exceeded"),
        "bad-503": (503, "server_error"),
    }
    for custom_id, (status, error_type) in expected_types.items():
        line = errors[custom_id]
        assert line["error"] is None and line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == status
        assert set(line["response"]["body"]["error"]) == {"message", "type", "param", "code"}
        assert line["response"]["body"]["error"]["type"] == error_type

    assert batch.usage is not None
    assert (batch.usage.input_tokens, batch.usage.output_tokens) == (prompt_total, completion_total)
    assert batch.usage.total_tokens == prompt_total + completion_total

    output_file = client.files.retrieve(batch.output_file_id)  # type: ignore[arg-type]
    assert output_file.purpose == "batch_output"
    assert output_file.filename == f"{batch.id}_output.jsonl"
    # Reading again does not regenerate anything.
    assert client.batches.retrieve(batch.id) == batch


def test_progress_is_visible_while_in_progress(start: Callable[..., RunningSimulator]) -> None:
    client = start(lines_per_second=40.0).client()
    batch = create_batch(client, [chat_line(f"r{i}", "hi") for i in range(20)])
    seen: list[int] = []

    def record(b: Batch) -> bool:
        assert b.request_counts is not None
        seen.append(b.request_counts.completed)
        return b.status in TERMINAL

    assert wait_for(client, batch.id, record).status == "completed"
    assert seen == sorted(seen), "counts only go up"
    assert any(0 < n < 20 for n in seen), seen


def test_all_lines_failing_gives_no_output_file(start: Callable[..., RunningSimulator]) -> None:
    client = start().client()
    lines: list[Any] = [chat_line(f"r{i}", "SIMULATE_ERROR_400") for i in range(3)]
    lines.append("this is {not json")
    wrong_url = chat_line("wrong-url", "fine")
    wrong_url["url"] = "/v1/embeddings"
    lines.append(wrong_url)
    lines.append({"custom_id": "no-model", "method": "POST", "url": CHAT, "body": {"messages": []}})
    batch = wait_terminal(client, create_batch(client, lines).id)
    assert batch.status == "completed"
    assert batch.output_file_id is None
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 6, "completed": 0, "failed": 6}
    errors = read_lines(client, batch.error_file_id)
    assert set(errors) == {"r0", "r1", "r2", None, "wrong-url", "no-model"}
    assert errors[None]["response"]["body"]["error"]["code"] == "invalid_json_line"
    assert errors["wrong-url"]["response"]["body"]["error"]["param"] == "url"
    assert errors["no-model"]["response"]["body"]["error"]["param"] == "model"


def test_cancel_mid_flight_keeps_partial_results(start: Callable[..., RunningSimulator]) -> None:
    client = start(lines_per_second=20.0, cancel_seconds=0.5).client()
    lines = [chat_line(f"r{i:02d}", f"line {i}") for i in range(40)]
    batch = create_batch(client, lines)

    def two_lines_done(b: Batch) -> bool:
        return b.status == "in_progress" and b.request_counts is not None and b.request_counts.completed >= 2

    wait_for(client, batch.id, two_lines_done)

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert cancelling.request_counts is not None
    done_at_cancel = cancelling.request_counts.completed
    assert 2 <= done_at_cancel < 40
    assert client.batches.cancel(batch.id).status == "cancelling"  # cancelling again is a no-op
    time.sleep(0.1)
    assert client.batches.retrieve(batch.id).status == "cancelling"

    cancelled = wait_terminal(client, batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert cancelled.completed_at is None
    assert cancelled.request_counts is not None
    assert cancelled.request_counts.model_dump() == {
        "total": 40,
        "completed": done_at_cancel,
        "failed": 40 - done_at_cancel,
    }
    outputs = read_lines(client, cancelled.output_file_id)
    # Lines finish in input order, so exactly the first `done_at_cancel` ones have results.
    assert sorted(outputs) == [f"r{i:02d}" for i in range(done_at_cancel)]
    errors = read_lines(client, cancelled.error_file_id)
    assert sorted(errors) == [f"r{i:02d}" for i in range(done_at_cancel, 40)]
    for line in errors.values():
        assert line["response"] is None
        assert line["error"] == {
            "code": "batch_cancelled",
            "message": "This request was cancelled before it could be executed.",
        }
    with pytest.raises(openai.BadRequestError) as terminal:
        client.batches.cancel(batch.id)
    assert "cancelled" in terminal.value.message


def test_expiry_keeps_partial_results(start: Callable[..., RunningSimulator]) -> None:
    client = start(lines_per_second=10.0, window_seconds=0.5).client()
    batch = create_batch(client, [chat_line(f"r{i}", "hi") for i in range(20)])
    expired = wait_terminal(client, batch.id)
    assert expired.status == "expired" and expired.expired_at is not None
    assert expired.request_counts is not None
    done = expired.request_counts.completed
    assert 1 <= done < 20  # ~0.45 s in progress at 10 lines/s
    assert expired.request_counts.failed == 20 - done
    assert len(read_lines(client, expired.output_file_id)) == done
    errors = read_lines(client, expired.error_file_id)
    assert len(errors) == 20 - done
    assert all(
        line["error"]["code"] == "batch_expired" and line["response"] is None for line in errors.values()
    )
    assert next(iter(errors.values()))["error"]["message"] == (
        "This request could not be executed before the completion window expired."
    )


def test_stall_stays_in_progress_and_can_be_cancelled(start: Callable[..., RunningSimulator]) -> None:
    client = start(stall=True, window_seconds=0.2).client()
    batch = create_batch(client, [chat_line(f"r{i}", "hi") for i in range(5)])
    wait_for(client, batch.id, lambda b: b.status == "in_progress")
    time.sleep(0.4)  # well past the window: a stalled batch never expires by itself
    still = client.batches.retrieve(batch.id)
    assert still.status == "in_progress"
    assert still.request_counts is not None
    assert still.request_counts.model_dump() == {"total": 5, "completed": 0, "failed": 0}

    assert client.batches.cancel(batch.id).status == "cancelling"
    cancelled = wait_terminal(client, batch.id)
    assert cancelled.status == "cancelled"
    assert cancelled.output_file_id is None
    errors = read_lines(client, cancelled.error_file_id)
    assert sorted(errors) == [f"r{i}" for i in range(5)]
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}


def test_runtime_config_unstalls_and_hooks(start: Callable[..., RunningSimulator]) -> None:
    sim = start(stall=True)
    client = sim.client()
    batch = create_batch(client, [chat_line(f"r{i}", "hi") for i in range(5)])
    wait_for(client, batch.id, lambda b: b.status == "in_progress")

    response = sim.set_config(stall=False, lines_per_second=500)
    assert response.status_code == 200
    assert response.json()["stall"] is False and response.json()["lines_per_second"] == 500
    assert "api_key" not in response.json()
    assert wait_terminal(client, batch.id).status == "completed"

    bad = sim.set_config(lines_per_second=0)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "lines_per_second"
    unknown = sim.set_config(data_dir="/elsewhere")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "data_dir"
    assert httpx.get(f"{sim.base_url}/_simulator/config").json()["lines_per_second"] == 500

    listed = sim.all_batches()
    assert [b["id"] for b in listed] == [batch.id] and listed[0]["status"] == "completed"


def test_invalid_input_files_fail_validation(start: Callable[..., RunningSimulator]) -> None:
    client = start().client()
    empty = wait_terminal(client, create_batch(client, ["", "  "]).id)
    assert empty.status == "failed" and empty.failed_at is not None
    assert empty.errors is not None and empty.errors.data is not None
    assert empty.errors.data[0].code == "empty_file"
    assert (empty.output_file_id, empty.error_file_id, empty.in_progress_at) == (None, None, None)

    dup = wait_terminal(client, create_batch(client, [chat_line("same", "a"), chat_line("same", "b")]).id)
    assert dup.status == "failed"
    assert dup.errors is not None and dup.errors.data is not None
    assert (dup.errors.data[0].code, dup.errors.data[0].line) == ("duplicate_custom_id", 2)


def test_embeddings_batch(start: Callable[..., RunningSimulator]) -> None:
    client = start().client()

    def line(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}

    lines = [
        line("one", {"model": "text-embedding-3-small", "input": "the quick brown fox"}),
        line("two", {"model": "text-embedding-3-small", "input": ["the quick brown fox", "jumps"]}),
        line("b64", {"model": "text-embedding-3-small", "input": "jumps", "encoding_format": "base64"}),
        line("bad", {"model": "text-embedding-3-small", "input": "SIMULATE_ERROR_500"}),
    ]
    batch = wait_terminal(client, create_batch(client, lines, endpoint="/v1/embeddings").id)
    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.request_counts.completed == 3
    outputs = read_lines(client, batch.output_file_id)
    one = CreateEmbeddingResponse.model_validate(outputs["one"]["response"]["body"])
    two = CreateEmbeddingResponse.model_validate(outputs["two"]["response"]["body"])
    assert len(one.data[0].embedding) == 8
    assert one.data[0].embedding == two.data[0].embedding  # deterministic per input
    assert [d.index for d in two.data] == [0, 1]
    assert (one.usage.prompt_tokens, one.usage.total_tokens, two.usage.prompt_tokens) == (4, 4, 5)
    encoded = outputs["b64"]["response"]["body"]["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(encoded))
    assert decoded == pytest.approx(two.data[1].embedding, abs=1e-6)
    assert batch.usage is not None
    assert (batch.usage.input_tokens, batch.usage.output_tokens) == (4 + 5 + 1, 0)


# ---------------------------------------------------------------------------------------------------
# batches: errors, auth, listing


def test_auth(start: Callable[..., RunningSimulator]) -> None:
    sim = start()
    with pytest.raises(openai.AuthenticationError) as wrong:
        sim.client(api_key="sk-wrong-key-123").batches.list()
    assert wrong.value.code == "invalid_api_key"
    assert wrong.value.type == "invalid_request_error"
    missing = httpx.get(f"{sim.base_url}/v1/files")
    assert missing.status_code == 401
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert missing.headers["x-request-id"].startswith("req_")
    assert sim.client().batches.list().data == []


def test_objects_are_scoped_by_key_when_no_key_is_configured(start: Callable[..., RunningSimulator]) -> None:
    sim = start(api_key=None)
    alice, bob = sim.client("alice"), sim.client("bob")
    batch = create_batch(alice, [chat_line("r", "hi")])
    with pytest.raises(openai.NotFoundError):
        bob.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        bob.files.retrieve(batch.input_file_id)
    assert bob.batches.list().data == []
    assert [b["id"] for b in sim.all_batches()] == [batch.id]


def test_bad_params(start: Callable[..., RunningSimulator]) -> None:
    client = start().client()
    file_id = upload_jsonl(client, [chat_line("r", "hi")])

    def bad(**params: Any) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as caught:
            client.batches.create(
                **{"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **params}
            )
        return caught.value

    assert bad(endpoint="/v1/moderations").param == "endpoint"
    assert bad(completion_window="48h").param == "completion_window"
    assert bad(metadata={f"k{i}": "v" for i in range(17)}).param == "metadata"
    assert bad(metadata={"k": "v" * 513}).param == "metadata"
    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    assert bad(input_file_id=other.id).param == "input_file_id"

    with pytest.raises(openai.NotFoundError) as no_file:
        client.batches.create(input_file_id="file-nope", endpoint=CHAT, completion_window="24h")
    assert no_file.value.message.endswith("No such File object: file-nope")
    with pytest.raises(openai.NotFoundError) as no_batch:
        client.batches.retrieve("batch_nope")
    assert no_batch.value.body == {
        "message": "No such Batch object: batch_nope",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_nope")
    with pytest.raises(openai.BadRequestError) as bad_limit:
        client.batches.list(limit=101)
    assert bad_limit.value.param == "limit"

    headers = {"Authorization": f"Bearer {API_KEY}"}
    for body in (b"", b"{not json", b"[1, 2]", json.dumps({"endpoint": CHAT}).encode()):
        response = httpx.post(f"{client.base_url}batches", content=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(f"{client.base_url}batches", json={"endpoint": CHAT}, headers=headers).json()
    assert (missing["error"]["param"], missing["error"]["code"]) == (
        "input_file_id",
        "missing_required_parameter",
    )
    order = httpx.get(f"{client.base_url}files", params={"order": "sideways"}, headers=headers)
    assert order.status_code == 400 and order.json()["error"]["param"] == "order"
    unknown_url = httpx.get(f"{client.base_url}nothing-here", headers=headers)
    assert unknown_url.status_code == 404 and "error" in unknown_url.json()


def test_batch_list_paging(start: Callable[..., RunningSimulator]) -> None:
    client = start(stall=True).client()
    file_id = upload_jsonl(client, [chat_line("r", "hi")])
    ids = [
        client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id
        for _ in range(5)
    ]
    newest_first = ids[::-1]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2] and page.has_more is True
    assert [b.id for b in client.batches.list(limit=2)] == newest_first  # auto-paging over 3 pages
    last = client.batches.list(limit=2, after=newest_first[3])
    assert [b.id for b in last.data] == newest_first[4:] and last.has_more is False
    assert [b.id for b in client.batches.list()] == newest_first


# ---------------------------------------------------------------------------------------------------
# durability: a new app on the same data_dir picks up where the old one stopped


def test_files_and_running_batch_survive_a_restart(tmp_path: Path) -> None:
    config = restart_config(tmp_path / "sim")
    blob = os.urandom(200_000) + b"\r\n\x00\xff"
    lines = [chat_line(f"r{i:02d}", f"line {i}") for i in range(30)]
    lines[7] = chat_line("r07", "SIMULATE_ERROR_503")
    with running_simulator(config) as first:
        client = first.client()
        blob_file = client.files.create(file=("blob.bin", blob), purpose="user_data")
        deleted = client.files.create(file=("gone.txt", b"bye"), purpose="user_data")
        client.files.delete(deleted.id)
        batch = create_batch(client, lines, metadata={"run": "1"})
        input_file = client.files.retrieve(batch.input_file_id)

        def some_lines_done(b: Batch) -> bool:
            return b.request_counts is not None and b.request_counts.completed >= 3

        mid = wait_for(client, batch.id, some_lines_done)
        assert mid.status == "in_progress"
        assert mid.request_counts is not None and mid.request_counts.completed < 25  # stopped mid-run

    with running_simulator(config) as second:
        client = second.client()
        assert client.files.retrieve(blob_file.id) == blob_file
        assert client.files.content(blob_file.id).content == blob
        assert client.files.retrieve(input_file.id) == input_file
        expected_input = "".join(json.dumps(line) + "\n" for line in lines).encode()
        assert client.files.content(input_file.id).content == expected_input
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(deleted.id)

        resumed = client.batches.retrieve(batch.id)
        assert resumed.status in ("in_progress", "finalizing", "completed")
        assert resumed.created_at == batch.created_at and resumed.in_progress_at == mid.in_progress_at
        assert resumed.request_counts is not None
        assert resumed.request_counts.completed >= mid.request_counts.completed  # never goes back

        done = wait_terminal(client, batch.id)
        assert done.status == "completed" and done.metadata == {"run": "1"}
        assert done.request_counts is not None
        assert done.request_counts.model_dump() == {"total": 30, "completed": 29, "failed": 1}
        outputs = read_lines(client, done.output_file_id)
        assert sorted(outputs) == sorted(f"r{i:02d}" for i in range(30) if i != 7)
        assert outputs["r12"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: line 12"
        errors = read_lines(client, done.error_file_id)
        assert list(errors) == ["r07"] and errors["r07"]["response"]["status_code"] == 503

        # New objects sort after the restored ones; a deleted file still works as a cursor.
        newest = client.files.create(file=("new.txt", b"new"), purpose="user_data")
        listed = [f.id for f in client.files.list()]
        assert listed[0] == newest.id
        assert {blob_file.id, input_file.id, done.output_file_id, done.error_file_id} < set(listed)
        assert [f.id for f in client.files.list(after=deleted.id)] == [blob_file.id]
        assert [b.id for b in client.batches.list()] == [batch.id]

    # A third start sees the finished batch as it was: result files are not written twice.
    with running_simulator(config) as third:
        client = third.client()
        assert client.batches.retrieve(batch.id) == done
        assert len(client.files.list().data) == len(listed)


def test_cancel_requested_before_a_restart_ends_cancelled(tmp_path: Path) -> None:
    # cancel_seconds is long enough that the batch is still cancelling when the first server stops.
    config = restart_config(tmp_path / "sim", cancel_seconds=2.0)
    with running_simulator(config) as first:
        client = first.client()
        batch = create_batch(client, [chat_line(f"r{i:02d}", "hi") for i in range(40)])
        wait_for(
            client,
            batch.id,
            lambda b: b.request_counts is not None and b.request_counts.completed >= 2,
        )
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.request_counts is not None
        done_at_cancel = cancelling.request_counts.completed

    with running_simulator(config) as second:
        client = second.client()
        assert client.batches.retrieve(batch.id).status == "cancelling"
        cancelled = wait_terminal(client, batch.id)
        assert cancelled.status == "cancelled" and cancelled.cancelling_at == cancelling.cancelling_at
        assert cancelled.request_counts is not None
        assert cancelled.request_counts.model_dump() == {
            "total": 40,
            "completed": done_at_cancel,
            "failed": 40 - done_at_cancel,
        }
        assert sorted(read_lines(client, cancelled.output_file_id)) == [
            f"r{i:02d}" for i in range(done_at_cancel)
        ]
        errors = read_lines(client, cancelled.error_file_id)
        assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
        assert len(errors) == 40 - done_at_cancel


def test_batch_expires_across_a_restart(tmp_path: Path) -> None:
    config = restart_config(tmp_path / "sim", lines_per_second=10.0, window_seconds=0.8)
    with running_simulator(config) as first:
        client = first.client()
        batch = create_batch(client, [chat_line(f"r{i}", "hi") for i in range(20)])
        wait_for(client, batch.id, lambda b: b.status == "in_progress")
    with running_simulator(config) as second:
        client = second.client()
        expired = wait_terminal(client, batch.id)
        assert expired.status == "expired" and expired.expired_at is not None
        assert expired.request_counts is not None
        done = expired.request_counts.completed
        assert 1 <= done < 20 and expired.request_counts.failed == 20 - done
        assert len(read_lines(client, expired.error_file_id)) == 20 - done


def test_unreadable_state_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "sim"
    config = restart_config(data_dir, lines_per_second=1000.0)
    with running_simulator(config) as first:
        client = first.client()
        kept = client.files.create(file=("kept.txt", b"kept"), purpose="user_data")
        truncated = client.files.create(file=("truncated.txt", b"x"), purpose="user_data")
        wrong_type = client.files.create(file=("wrong.txt", b"y"), purpose="user_data")
        good = wait_terminal(client, create_batch(client, [chat_line("a", "hi")]).id)
        broken = wait_terminal(client, create_batch(client, [chat_line("b", "hi")]).id)

    files_state, batch_state = data_dir / "state" / "files", data_dir / "state" / "batches"
    record = files_state / f"{truncated.id}.json"
    record.write_bytes(record.read_bytes()[:20])  # half-written
    record = files_state / f"{wrong_type.id}.json"
    record.write_bytes(record.read_bytes().replace(b'"bytes":1', b'"bytes":"lots"'))
    (batch_state / f"{broken.id}.json").write_bytes(b"\x00garbage")
    (files_state / ".leftover.json.1234.tmp").write_bytes(b"{")  # a temp file from a crashed write
    (files_state / "file-unrelated.json").write_bytes(b"[]")

    with caplog.at_level("WARNING", logger="batchway.simulator"), running_simulator(config) as second:
        client = second.client()
        assert client.files.content(kept.id).content == b"kept"
        assert client.batches.retrieve(good.id) == good
        for missing in (truncated.id, wrong_type.id):
            with pytest.raises(openai.NotFoundError):
                client.files.retrieve(missing)
        with pytest.raises(openai.NotFoundError):
            client.batches.retrieve(broken.id)
    skipped = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    for name in (truncated.id, wrong_type.id, broken.id, "file-unrelated"):
        assert name in skipped
    assert "leftover" not in skipped
