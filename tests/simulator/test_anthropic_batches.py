"""The Anthropic Message Batches simulator, driven over real HTTP by the official `anthropic` SDK."""

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from tests.simulator.helpers import API_KEY, RunningSimulator, restart_config, running_simulator

MODEL = "claude-sonnet-4-5"
BATCHES = "/v1/messages/batches"
# What the SDK sends; raw-HTTP tests send the same so only the header under test differs.
VERSION = {"anthropic-version": "2023-06-01"}


def request(custom_id: str, text: str = "hello", **params: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 1024,
            "system": "be brief",
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def wait_for(
    client: Anthropic, batch_id: str, predicate: Callable[[MessageBatch], bool], timeout: float = 5.0
) -> MessageBatch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if predicate(batch):
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last state {batch.processing_status} {batch.request_counts}")
        time.sleep(0.02)


def wait_ended(client: Anthropic, batch_id: str, timeout: float = 5.0) -> MessageBatch:
    return wait_for(client, batch_id, lambda b: b.processing_status == "ended", timeout)


def results(client: Anthropic, batch_id: str) -> dict[str, Any]:
    """Result of each request by custom_id (Anthropic does not promise an order)."""
    return {line.custom_id: line.result for line in client.messages.batches.results(batch_id)}


def counts(batch: MessageBatch) -> dict[str, int]:
    return batch.request_counts.model_dump()


def raw(sim: RunningSimulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"x-api-key": API_KEY, **VERSION, **kwargs.pop("headers", {})}
    return httpx.request(method, f"{sim.base_url}{path}", headers=headers, **kwargs)


def assert_error(response: httpx.Response, status: int, error_type: str) -> str:
    """Checks Anthropic's envelope and request id; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == response.headers["request-id"] and body["request_id"].startswith("req_")
    return body["error"]["message"]


# ---------------------------------------------------------------------------------------------------
# lifecycle


def test_batch_runs_to_the_end_and_serves_results(start: Callable[..., RunningSimulator]) -> None:
    sim = start(lines_per_second=40.0)
    client = sim.anthropic()
    requests = [request(f"ok-{i}", f"hello number {i}") for i in range(8)]
    requests.append(request("bad-400", "please SIMULATE_ERROR_400 now"))
    parts = request("bad-529")
    parts["params"]["messages"][0]["content"] = [{"type": "text", "text": "SIMULATE_ERROR_529"}]
    requests.append(parts)

    created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert counts(created) == {"processing": 10, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert created.expires_at - created.created_at == timedelta(days=1)
    assert (created.ended_at, created.cancel_initiated_at, created.archived_at, created.results_url) == (
        None,
        None,
        None,
        None,
    )
    # Every MessageBatch key is present on the wire, timestamps in RFC 3339 with a Z.
    response = client.messages.batches.with_raw_response.retrieve(created.id)
    assert response.headers["request-id"].startswith("req_")
    wire = json.loads(response.http_response.text)
    assert set(wire) == set(MessageBatch.model_fields)
    assert wire["created_at"].endswith("Z") and "T" in wire["created_at"]

    # Only `processing` moves until the whole batch has ended (~0.25 s at 40 requests/s).
    seen: list[dict[str, int]] = []

    def record(batch: MessageBatch) -> bool:
        seen.append(counts(batch))
        return batch.processing_status == "ended"

    ended = wait_for(client, created.id, record)
    assert len(seen) > 2 and all(c["processing"] == 10 and sum(c.values()) == 10 for c in seen[:-1])
    assert counts(ended) == {"processing": 0, "succeeded": 8, "errored": 2, "canceled": 0, "expired": 0}
    assert ended.ended_at is not None and ended.created_at < ended.ended_at < ended.expires_at
    assert ended.results_url == f"{sim.base_url}{BATCHES}/{created.id}/results"

    by_id = results(client, created.id)
    assert sorted(by_id) == sorted(r["custom_id"] for r in requests)
    for i in range(8):
        result = by_id[f"ok-{i}"]
        assert result.type == "succeeded"
        message = Message.model_validate(result.message.model_dump())
        assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
        assert message.model == MODEL and message.stop_reason == "end_turn" and message.stop_sequence is None
        assert [block.model_dump(exclude_none=True) for block in message.content] == [
            {"type": "text", "text": f"echo: hello number {i}"}
        ]
        # "be brief" (2) + "hello number N" (3) in; "echo: hello number N" (4) out.
        usage = message.usage
        assert (usage.input_tokens, usage.output_tokens) == (5, 4)
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
        assert usage.service_tier == "batch"
    for custom_id, error_type in (("bad-400", "invalid_request_error"), ("bad-529", "overloaded_error")):
        result = by_id[custom_id]
        assert result.type == "errored"
        assert result.error.type == "error" and result.error.error.type == error_type
        assert custom_id.removeprefix("bad-") in result.error.error.message
        assert result.error.request_id and result.error.request_id.startswith("req_")

    # The raw results: one JSON object per line, no blank lines, newline-terminated.
    body = raw(sim, "GET", f"{BATCHES}/{created.id}/results").content
    lines = body.split(b"\n")
    assert lines[-1] == b"" and all(lines[:-1]) and len(lines[:-1]) == 10
    for line in lines[:-1]:
        MessageBatchIndividualResponse.model_validate(json.loads(line))
    assert client.messages.batches.retrieve(created.id) == ended  # reading again changes nothing

    calls = sim.calls()["anthropic"]
    assert (calls["batches.create"], calls["batches.cancel"], calls["batches.results"]) == (1, 0, 2)
    assert set(sim.calls()["openai"].values()) == {0}


def test_cancel_keeps_finished_results_and_cancels_the_rest(start: Callable[..., RunningSimulator]) -> None:
    sim = start(lines_per_second=20.0, cancel_seconds=0.3)
    client = sim.anthropic()
    batch = client.messages.batches.create(requests=[request(f"r{i:02d}") for i in range(40)])  # type: ignore[arg-type]
    time.sleep(0.25)  # ~5 requests done; counts do not show it until the batch ends

    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert counts(canceling)["processing"] == 40 and canceling.results_url is None
    again = client.messages.batches.cancel(batch.id)  # canceling again is a no-op
    assert again.cancel_initiated_at == canceling.cancel_initiated_at
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)  # the SDK refuses before the batch has ended
    not_yet = raw(sim, "GET", f"{BATCHES}/{batch.id}/results")
    assert "canceling" in assert_error(not_yet, 400, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)

    ended = wait_ended(client, batch.id)
    assert ended.ended_at is not None and ended.cancel_initiated_at == canceling.cancel_initiated_at
    assert abs((ended.ended_at - ended.cancel_initiated_at).total_seconds() - 0.3) < 0.001
    finished = counts(ended)["succeeded"]
    assert 1 <= finished < 40
    assert counts(ended) == {
        "processing": 0,
        "succeeded": finished,
        "errored": 0,
        "canceled": 40 - finished,
        "expired": 0,
    }
    by_id = results(client, batch.id)
    # Requests finish in input order, so exactly the first `finished` have results.
    assert [cid for cid, r in sorted(by_id.items()) if r.type == "succeeded"] == [
        f"r{i:02d}" for i in range(finished)
    ]
    assert {r.type for cid, r in by_id.items() if cid >= f"r{finished:02d}"} == {"canceled"}
    canceled_line = raw(sim, "GET", f"{BATCHES}/{batch.id}/results").text.splitlines()[-1]
    assert json.loads(canceled_line) == {"custom_id": "r39", "result": {"type": "canceled"}}

    with pytest.raises(anthropic.BadRequestError) as too_late:
        client.messages.batches.cancel(batch.id)
    assert too_late.value.type == "invalid_request_error" and "ended" in str(too_late.value.api_message)


def test_expiry_ends_the_batch_and_expires_the_rest(start: Callable[..., RunningSimulator]) -> None:
    client = start(lines_per_second=10.0, window_seconds=0.5).anthropic()
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(20)])  # type: ignore[arg-type]
    assert batch.expires_at - batch.created_at == timedelta(seconds=0.5)
    ended = wait_ended(client, batch.id)
    assert ended.ended_at == ended.expires_at and ended.cancel_initiated_at is None
    done = counts(ended)["succeeded"]
    assert 1 <= done < 20  # ~0.5 s at 10 requests/s
    assert counts(ended) == {
        "processing": 0,
        "succeeded": done,
        "errored": 0,
        "canceled": 0,
        "expired": 20 - done,
    }
    by_type: dict[str, int] = {}
    for result in results(client, batch.id).values():
        by_type[result.type] = by_type.get(result.type, 0) + 1
    assert by_type == {"succeeded": done, "expired": 20 - done}


def test_stall_holds_until_config_changes(start: Callable[..., RunningSimulator]) -> None:
    sim = start(stall=True, window_seconds=0.2)
    client = sim.anthropic()
    stuck = client.messages.batches.create(requests=[request("a"), request("b")])  # type: ignore[arg-type]
    to_cancel = client.messages.batches.create(requests=[request("c")])  # type: ignore[arg-type]
    time.sleep(0.4)  # past the window: a stalled batch neither progresses nor expires
    assert client.messages.batches.retrieve(stuck.id).processing_status == "in_progress"

    client.messages.batches.cancel(to_cancel.id)  # cancel still works while stalled
    canceled = wait_ended(client, to_cancel.id)
    assert counts(canceled)["canceled"] == 1
    assert [r.type for r in results(client, to_cancel.id).values()] == ["canceled"]

    update = sim.set_config(stall=False, anthropic_max_requests=5)
    assert update.status_code == 200 and update.json()["anthropic_max_requests"] == 5
    # Unstalled past its window, the batch expires at once: stalling suspends expiry, not the window.
    ended = wait_ended(client, stuck.id)
    assert counts(ended) == {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 2}
    listed = httpx.get(f"{sim.base_url}/_simulator/anthropic/batches").json()["data"]
    assert [b["id"] for b in listed] == [to_cancel.id, stuck.id]


# ---------------------------------------------------------------------------------------------------
# what a request answers


def test_triggers_shape_each_result(start: Callable[..., RunningSimulator]) -> None:
    client = start().anthropic()
    weather_tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
            },
        },
    }
    requests = [
        request("refusal", "SIMULATE_REFUSAL please"),
        request("max-tokens", "SIMULATE_MAX_TOKENS one two three four", max_tokens=3),
        request("tool", "SIMULATE_TOOL_USE what is the weather", tools=[weather_tool, {"name": "other"}]),
        request("tool-without-tools", "SIMULATE_TOOL_USE"),
        request("cache", "SIMULATE_CACHE hi"),
        request("thinking", "SIMULATE_THINKING hi"),
        request("in-system", "hi", system=[{"type": "text", "text": "SIMULATE_ERROR_429"}]),
        request("unknown-block", "x"),
        request("bad-role", "x"),
    ]
    requests[7]["params"]["messages"][0]["content"] = [{"type": "hologram", "text": "x"}]
    requests[8]["params"]["messages"][0]["role"] = "system"
    error_types = {
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        418: "invalid_request_error",
        500: "api_error",
        503: "api_error",
        504: "timeout_error",
    }
    requests += [request(f"error-{status}", f"SIMULATE_ERROR_{status}") for status in error_types]
    batch = wait_ended(client, client.messages.batches.create(requests=requests).id)  # type: ignore[arg-type]
    assert counts(batch)["succeeded"] == 6 and counts(batch)["errored"] == len(requests) - 6
    by_id = results(client, batch.id)

    refusal = by_id["refusal"].message
    assert refusal.stop_reason == "refusal" and refusal.stop_details is not None
    assert refusal.stop_details.type == "refusal"

    cut = by_id["max-tokens"].message
    assert cut.stop_reason == "max_tokens"
    assert cut.content[0].text == "echo: SIMULATE_MAX_TOKENS one" and cut.usage.output_tokens == 3

    tool = by_id["tool"].message
    assert tool.stop_reason == "tool_use"
    assert [block.type for block in tool.content] == ["text", "tool_use"]
    call = tool.content[1]
    assert call.id.startswith("toolu_") and call.name == "get_weather"
    assert call.input == {"city": "echo", "days": 0, "metric": False}
    assert by_id["tool-without-tools"].message.stop_reason == "end_turn"

    cached = by_id["cache"].message.usage
    # "be brief SIMULATE_CACHE hi": 4 words of prompt.
    assert (cached.input_tokens, cached.cache_creation_input_tokens, cached.cache_read_input_tokens) == (
        4,
        4,
        8,
    )

    thinking = by_id["thinking"].message
    assert [block.type for block in thinking.content] == ["thinking", "text"]
    assert thinking.content[0].thinking and thinking.content[0].signature
    assert thinking.usage.output_tokens_details is not None
    thinking_tokens = thinking.usage.output_tokens_details.thinking_tokens
    assert (
        thinking_tokens > 0 and thinking.usage.output_tokens == thinking_tokens + 3
    )  # "echo: SIMULATE_THINKING hi"

    assert by_id["in-system"].error.error.type == "rate_limit_error"  # triggers work in any string
    unknown = by_id["unknown-block"].error.error
    assert unknown.type == "invalid_request_error" and "hologram" in unknown.message
    assert "messages.0.role" in by_id["bad-role"].error.error.message
    for status, error_type in error_types.items():
        result = by_id[f"error-{status}"]
        assert result.type == "errored" and result.error.error.type == error_type, status


# ---------------------------------------------------------------------------------------------------
# auth, validation, listing


def test_both_auth_styles_and_key_scoping(start: Callable[..., RunningSimulator]) -> None:
    sim = start()
    with_bearer = sim.anthropic()  # anthropic >= 2 sends the api key as `Authorization: Bearer`
    created = raw(sim, "POST", BATCHES, json={"requests": [request("a")]})  # x-api-key
    assert created.status_code == 200 and created.headers["request-id"].startswith("req_")
    batch_id = created.json()["id"]
    assert with_bearer.messages.batches.retrieve(batch_id).id == batch_id
    auth_token = Anthropic(base_url=sim.base_url, auth_token=API_KEY, max_retries=0)
    assert [b.id for b in auth_token.messages.batches.list()] == [batch_id]

    with pytest.raises(anthropic.AuthenticationError) as wrong:
        sim.anthropic(api_key="sk-wrong-key-123").messages.batches.list()
    assert wrong.value.type == "authentication_error"
    assert wrong.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": wrong.value.request_id,
    }
    assert_error(raw(sim, "GET", BATCHES, headers={"x-api-key": "nope"}), 401, "authentication_error")
    missing = httpx.get(f"{sim.base_url}{BATCHES}", headers=VERSION)
    assert "x-api-key" in assert_error(missing, 401, "authentication_error")
    no_version = httpx.get(f"{sim.base_url}{BATCHES}", headers={"x-api-key": API_KEY})
    assert "anthropic-version" in assert_error(no_version, 400, "invalid_request_error")

    open_sim = start(api_key=None)
    alice, bob = open_sim.anthropic("alice"), open_sim.anthropic("bob")
    alices = alice.messages.batches.create(requests=[request("a")])  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError) as hidden:
        bob.messages.batches.retrieve(alices.id)
    assert hidden.value.type == "not_found_error"
    assert bob.messages.batches.list().data == []
    with pytest.raises(anthropic.NotFoundError):
        bob.messages.batches.cancel(alices.id)


def test_create_rejects_bad_requests(start: Callable[..., RunningSimulator]) -> None:
    sim = start(anthropic_max_requests=3, anthropic_max_body_bytes=20_000)

    def rejected(body: Any, status: int = 400, error_type: str = "invalid_request_error") -> str:
        return assert_error(raw(sim, "POST", BATCHES, json=body), status, error_type)

    def with_params(**changes: Any) -> dict[str, Any]:
        bad = request("r")
        for key, value in changes.items():
            if value is None:
                del bad["params"][key]
            else:
                bad["params"][key] = value
        return {"requests": [request("ok"), bad]}

    assert "pattern" in rejected({"requests": [request("has.dot")]})
    assert "pattern" in rejected({"requests": [request("x" * 65)]})
    assert "pattern" in rejected({"requests": [request("")]})
    assert rejected({"requests": [request("same"), request("same")]}).startswith(
        "requests.1.custom_id: Duplicate"
    )
    assert rejected(with_params(max_tokens=None)) == "requests.1.params.max_tokens: Field required"
    assert "greater than or equal to 1" in rejected(with_params(max_tokens=0))
    assert "valid integer" in rejected(with_params(max_tokens="10"))
    assert rejected(with_params(model=None)) == "requests.1.params.model: Field required"
    assert "at least 1 item" in rejected(with_params(messages=[]))
    assert "stream" in rejected(with_params(stream=True))
    assert "Extra inputs" in rejected({"requests": [{**request("r"), "extra": 1}]})
    assert "at least 1 item" in rejected({"requests": []})
    assert rejected({"requests": [request(f"r{i}") for i in range(4)]}) == (
        "requests: List should have at most 3 items after validation, not 4"
    )
    assert rejected({"nothing": []}) == "requests: Field required"
    assert "JSON" in assert_error(
        raw(sim, "POST", BATCHES, content=b"{not json"), 400, "invalid_request_error"
    )
    huge = {"requests": [request("big", "word " * 5000)]}
    rejected(huge, 413, "request_too_large")
    with pytest.raises(anthropic.ContentTooLargeError):
        sim.anthropic().messages.batches.create(requests=huge["requests"])  # type: ignore[arg-type]

    client = sim.anthropic()
    with pytest.raises(anthropic.BadRequestError) as from_sdk:
        client.messages.batches.create(requests=[request("bad id")])  # type: ignore[arg-type]
    assert from_sdk.value.type == "invalid_request_error" and from_sdk.value.request_id
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")
    assert_error(raw(sim, "GET", f"{BATCHES}/msgbatch_nope/results"), 404, "not_found_error")
    assert_error(raw(sim, "GET", "/v1/messages/nothing-here"), 404, "not_found_error")
    # Every rejected create reached the simulator, and none made a batch.
    assert sim.calls()["anthropic"]["batches.create"] == 18
    assert httpx.get(f"{sim.base_url}/_simulator/anthropic/batches").json()["data"] == []


def test_list_pages_newest_first(start: Callable[..., RunningSimulator]) -> None:
    sim = start(stall=True)
    client = sim.anthropic()
    ids = [client.messages.batches.create(requests=[request("r")]).id for _ in range(5)]  # type: ignore[arg-type]
    newest_first = ids[::-1]

    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2] and page.has_more is True
    assert (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-paging
    last = client.messages.batches.list(limit=2, after_id=newest_first[2])
    assert [b.id for b in last.data] == newest_first[3:] and last.has_more is False
    before = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3] and before.has_more is True
    assert [b.id for b in client.messages.batches.list(before_id=newest_first[4])] == newest_first[:4]
    assert set(raw(sim, "GET", BATCHES).json()) == {"data", "has_more", "first_id", "last_id"}
    empty = start().anthropic().messages.batches.list()
    assert (empty.data, empty.has_more, empty.first_id, empty.last_id) == ([], False, None, None)

    assert "1000" in assert_error(
        raw(sim, "GET", BATCHES, params={"limit": 1001}), 400, "invalid_request_error"
    )
    assert_error(raw(sim, "GET", BATCHES, params={"limit": 0}), 400, "invalid_request_error")
    assert_error(raw(sim, "GET", BATCHES, params={"after_id": "msgbatch_nope"}), 400, "invalid_request_error")


def test_delete_only_once_ended(start: Callable[..., RunningSimulator]) -> None:
    sim = start(stall=True)
    client = sim.anthropic()
    running = client.messages.batches.create(requests=[request("a")])  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as still_running:
        client.messages.batches.delete(running.id)
    assert "in_progress" in str(still_running.value.api_message)

    sim.set_config(stall=False)
    wait_ended(client, running.id)
    deleted = client.messages.batches.delete(running.id)
    assert (deleted.id, deleted.type) == (running.id, "message_batch_deleted")
    for call in (
        client.messages.batches.retrieve,
        client.messages.batches.delete,
        client.messages.batches.cancel,
    ):
        with pytest.raises(anthropic.NotFoundError):
            call(running.id)
    assert_error(raw(sim, "GET", f"{BATCHES}/{running.id}/results"), 404, "not_found_error")
    assert client.messages.batches.list(after_id=running.id).data == []  # a deleted id still pages


# ---------------------------------------------------------------------------------------------------
# durability: a new app on the same data_dir picks up where the old one stopped


def test_batches_survive_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = restart_config(tmp_path / "sim", lines_per_second=20.0, cancel_seconds=1.0)
    with running_simulator(config) as first:
        client = first.anthropic()
        running = client.messages.batches.create(
            requests=[request(f"r{i:02d}", f"line {i}") for i in range(40)]  # type: ignore[arg-type]
        )
        canceled = client.messages.batches.create(requests=[request(f"c{i:02d}") for i in range(40)])  # type: ignore[arg-type]
        gone = client.messages.batches.create(requests=[request("g")])  # type: ignore[arg-type]
        time.sleep(0.2)
        canceling = client.messages.batches.cancel(canceled.id)
        wait_ended(client, gone.id)
        client.messages.batches.delete(gone.id)
        assert client.messages.batches.retrieve(running.id).processing_status == "in_progress"

    state = tmp_path / "sim" / "anthropic" / "state"
    (state / "msgbatch_garbage.json").write_bytes(b"\x00not json")
    with caplog.at_level("WARNING", logger="batchway.simulator"), running_simulator(config) as second:
        client = second.anthropic()
        resumed = client.messages.batches.retrieve(running.id)
        assert resumed.created_at == running.created_at and resumed.processing_status == "in_progress"
        assert client.messages.batches.retrieve(canceled.id).processing_status == "canceling"
        ended = wait_ended(client, running.id)
        assert counts(ended)["succeeded"] == 40
        assert results(client, running.id)["r12"].message.content[0].text == "echo: line 12"
        canceled_end = wait_ended(client, canceled.id)
        assert canceled_end.cancel_initiated_at == canceling.cancel_initiated_at
        finished = counts(canceled_end)["succeeded"]
        assert 1 <= finished < 40 and counts(canceled_end)["canceled"] == 40 - finished
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(gone.id)
        assert [b.id for b in client.messages.batches.list()] == [canceled.id, running.id]
        newer = client.messages.batches.create(requests=[request("n")])  # type: ignore[arg-type]
        assert client.messages.batches.list().data[0].id == newer.id  # new batches sort after restored ones
    assert "msgbatch_garbage" in caplog.text

    with running_simulator(config) as third:  # ended batches come back exactly as they were
        client = third.anthropic()
        again = client.messages.batches.retrieve(canceled.id)
        assert again.model_dump(exclude={"results_url"}) == canceled_end.model_dump(exclude={"results_url"})
        assert again.results_url is not None and again.results_url.startswith(third.base_url)
        assert len(results(client, canceled.id)) == 40
