"""The hostile upstream itself, driven by the official `openai` SDK over real HTTP, so batchway's
end-to-end tests can trust it to misbehave exactly as scripted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types import Batch

from tests.hostile import ALL_CORRUPTIONS, UNREADABLE_CORRUPTIONS, Faults, HostileUpstream, Timing
from tests.servers import serve_in_thread

FAST = Timing(validate_seconds=0.02, run_seconds=0.1, finalize_seconds=0.02, cancel_seconds=0.05)
ENDED = {"completed", "failed", "expired", "cancelled"}


@dataclass
class Rig:
    upstream: HostileUpstream
    client: openai.OpenAI
    url: str


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    with ExitStack() as stack:

        def start(timing: Timing = FAST, timeout: float = 5.0, **faults: Any) -> Rig:
            upstream = HostileUpstream(Faults(**faults), timing)
            url = stack.enter_context(serve_in_thread(upstream.app))
            client = openai.OpenAI(base_url=url + "/v1", api_key="any", max_retries=0, timeout=timeout)
            stack.callback(client.close)
            return Rig(upstream, client, url)

        yield start


def upload(client: openai.OpenAI, n: int) -> str:
    lines = [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}
        for i in range(n)
    ]
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    return client.files.create(file=("in.jsonl", data), purpose="batch").id


def create(client: openai.OpenAI, file_id: str, tag: str = "bw_1") -> Batch:
    return client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"batchway_batch_id": tag},
    )


def wait(client: openai.OpenAI, batch_id: str, until: set[str], timeout: float = 3.0) -> Batch:
    deadline = time.monotonic() + timeout
    while (batch := client.batches.retrieve(batch_id)).status not in until:
        assert time.monotonic() < deadline, f"still {batch.status}"
        time.sleep(0.02)
    return batch


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    return (
        []
        if file_id is None
        else [orjson.loads(raw) for raw in client.files.content(file_id).content.splitlines()]
    )


def test_healthy_batch_completes_with_one_good_line_per_input(rig: Callable[..., Rig]) -> None:
    r = rig()
    file_id = upload(r.client, 4)
    assert r.client.files.retrieve(file_id).purpose == "batch"
    batch = create(r.client, file_id)
    assert (batch.status, batch.request_counts.total) == ("validating", 0)
    done = wait(r.client, batch.id, ENDED)
    assert (done.status, done.error_file_id, done.request_counts.completed) == ("completed", None, 4)
    lines = lines_of(r.client, done.output_file_id)
    assert sorted(line["custom_id"] for line in lines) == ["c0", "c1", "c2", "c3"]
    assert all(line["response"]["body"]["usage"]["total_tokens"] == 8 for line in lines)
    page = r.client.batches.list()
    assert ([b.id for b in page.data], page.has_more) == ([batch.id], False)
    assert r.client.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        r.client.files.retrieve(file_id)


def test_cancel_keeps_finished_lines_and_errors_the_rest(rig: Callable[..., Rig]) -> None:
    r = rig(timing=Timing(validate_seconds=0.0, run_seconds=0.6, cancel_seconds=0.05))
    batch = create(r.client, upload(r.client, 10))
    time.sleep(0.2)
    assert r.client.batches.cancel(batch.id).status == "cancelling"
    done = wait(r.client, batch.id, ENDED)
    ok, cancelled = lines_of(r.client, done.output_file_id), lines_of(r.client, done.error_file_id)
    assert done.status == "cancelled" and 0 < len(ok) < 10
    assert {line["error"]["code"] for line in cancelled} == {"batch_cancelled"}
    assert sorted(line["custom_id"] for line in ok + cancelled) == sorted(f"c{i}" for i in range(10))
    assert r.upstream.stats()["cancels"] == {batch.id: 1}


def test_malformed_output_holds_every_corruption(rig: Callable[..., Rig]) -> None:
    r = rig(corruptions=ALL_CORRUPTIONS)
    done = wait(r.client, create(r.client, upload(r.client, 10)).id, ENDED)
    applied = r.upstream.stats()["corrupted"][done.id]
    assert set(applied) == set(ALL_CORRUPTIONS)
    raw = r.client.files.content(done.output_file_id).content
    assert not raw.endswith(b"\n")
    *whole, last = raw.split(b"\n")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(last)
    parsed = [orjson.loads(line) for line in whole]
    objects = [p for p in parsed if isinstance(p, dict)]
    assert any(isinstance(p, list) for p in parsed)
    assert any(p["error"] == "boom" for p in objects)
    assert any(p["custom_id"] == [applied["custom_id_list"]] for p in objects)
    assert any(p["response"] and p["response"]["body"]["usage"]["prompt_tokens"] == "n/a" for p in objects)
    assert any(p["response"] and "status_code" not in p["response"] for p in objects)
    assert any(p["custom_id"] == applied["unknown_custom_id"] for p in objects)
    assert whole.count(next(w for w in whole if applied["duplicate_line"].encode() in w)) == 2
    readable = {p["custom_id"] for p in objects if isinstance(p["custom_id"], str)}
    assert not {applied[c] for c in UNREADABLE_CORRUPTIONS} & readable  # these must end in an error file


def test_refused_cancel_answers_400_until_the_fault_is_cleared(rig: Callable[..., Rig]) -> None:
    r = rig(timing=Timing(run_seconds=5), cancel="refuse")
    batch = create(r.client, upload(r.client, 2))
    with pytest.raises(openai.BadRequestError) as refused:
        r.client.batches.cancel(batch.id)
    assert refused.value.type == "invalid_request_error" and "cannot cancel" in refused.value.message
    cleared = httpx.post(r.url + "/_hostile/faults", json={"cancel": None}).json()
    assert cleared["cancel"] is None
    assert r.client.batches.cancel(batch.id).status == "cancelling"
    assert r.upstream.stats()["cancels"] == {batch.id: 2}


def test_ignored_cancel_stays_cancelling_while_the_batch_runs(rig: Callable[..., Rig]) -> None:
    r = rig(cancel="ignore")
    batch = create(r.client, upload(r.client, 3))
    assert r.client.batches.cancel(batch.id).status == "cancelling"
    r.upstream.reset_faults()  # a swallowed cancel stays swallowed
    time.sleep(0.3)
    stuck = r.client.batches.retrieve(batch.id)
    assert (stuck.status, stuck.request_counts.completed, stuck.output_file_id) == ("cancelling", 3, None)
    assert r.client.batches.cancel(batch.id).status == "cancelling"


@pytest.mark.parametrize(
    ("fault", "status"), [("stay_finalizing", "finalizing"), ("unknown_status", "mystery")]
)
def test_stuck_batches_never_end_cancel_or_not(rig: Callable[..., Rig], fault: str, status: str) -> None:
    r = rig(cancel=fault)
    batch = create(r.client, upload(r.client, 2))
    r.upstream.reset_faults()  # the fate was fixed at create
    time.sleep(0.3)
    assert r.client.batches.retrieve(batch.id).status == status
    assert r.client.batches.cancel(batch.id).status == status
    time.sleep(0.2)
    assert [b.status for b in r.client.batches.list().data] == [status]


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("503", openai.InternalServerError),
        ("drop", openai.APIConnectionError),
        ("hang", openai.APITimeoutError),
    ],
)
def test_lost_create_is_listed_only_past_150_newer_batches(
    rig: Callable[..., Rig], mode: str, error: type[Exception]
) -> None:
    r = rig(timeout=0.5, lost_create=mode)
    file_id = upload(r.client, 1)
    with pytest.raises(error):
        create(r.client, file_id, tag="bw_lost")
    first = r.client.batches.list(limit=100)
    assert first.has_more and all(b.metadata.get("batchway_batch_id") is None for b in first.data)
    everything = list(r.client.batches.list(limit=100))
    assert [i for i, b in enumerate(everything) if b.metadata.get("batchway_batch_id") == "bw_lost"] == [150]
    retried = create(r.client, file_id, tag="bw_lost")  # only the first create loses its answer
    assert retried.status == "validating"
    stats = r.upstream.stats()
    assert (stats["batches_created"], stats["lost_creates"], stats["decoys_created"]) == (
        {"bw_lost": 2},
        {"bw_lost": 1},
        150,
    )


def test_fail_every_second_call_answers_503_on_the_chosen_routes(rig: Callable[..., Rig]) -> None:
    r = rig(fail_every=2)  # every other call of each route
    file_id = upload(r.client, 1)  # files.create 1
    r.client.files.retrieve(file_id)  # files.retrieve 1
    with pytest.raises(openai.InternalServerError) as failed:
        r.client.files.retrieve(file_id)  # files.retrieve 2
    assert failed.value.type == "server_error"
    r.client.batches.list()  # batches.list 1
    with pytest.raises(openai.InternalServerError):
        r.client.batches.list()  # batches.list 2
    r.upstream.set_faults(fail_routes=["batches.list"])
    results = []
    for _ in range(4):
        r.client.files.retrieve(file_id)
        try:
            r.client.batches.list()
            results.append("ok")
        except openai.InternalServerError:
            results.append("503")
    assert results == ["ok", "503", "ok", "503"]
    assert r.upstream.stats()["failed_calls"] == {"files.retrieve": 1, "batches.list": 3}


def test_stall_delays_only_the_chosen_routes_and_combines_with_failures(rig: Callable[..., Rig]) -> None:
    r = rig(stall_seconds=0.3, stall_routes=["files.retrieve"])
    file_id = upload(r.client, 1)

    def timed(call: Callable[[], object]) -> float:
        began = time.monotonic()
        call()
        return time.monotonic() - began

    assert timed(lambda: r.client.files.retrieve(file_id)) >= 0.3
    assert timed(lambda: r.client.batches.list()) < 0.2
    r.upstream.set_faults(fail_every=1, fail_routes=["files.retrieve"])
    began = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        r.client.files.retrieve(file_id)
    assert time.monotonic() - began >= 0.3


def test_control_routes_validate_faults_and_report_stats(rig: Callable[..., Rig]) -> None:
    r = rig()
    upload(r.client, 1)
    bad = httpx.post(r.url + "/_hostile/faults", json={"fail_routes": ["nope"]})
    assert bad.status_code == 400 and "unknown routes" in bad.json()["error"]["message"]
    assert httpx.post(r.url + "/_hostile/faults", json={"fail_every": 3}).json()["fail_every"] == 3
    assert httpx.delete(r.url + "/_hostile/faults").json()["fail_every"] == 0
    stats = httpx.get(r.url + "/_hostile/stats").json()
    assert (stats["calls"], stats["file_uploads"]) == ({"files.create": 1}, 1)
    missing = httpx.get(r.url + "/v1/batches/batch_nope")
    assert missing.status_code == 404 and missing.headers["x-request-id"].startswith("req_")
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
