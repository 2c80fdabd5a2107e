"""The synchronous OpenAI-compatible API (fan-out upstream), driven over real HTTP by the official
`openai` SDK: answers, rate-limit buckets and headers, concurrency cap, injected faults, counters."""

import hashlib
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from batchway.simulator.rate_limits import go_duration
from tests.simulator.helpers import API_KEY, RunningSimulator

Start = Callable[..., RunningSimulator]

_DURATION_TERM = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as `6m0s` or `17.28s`; fails the test on anything else."""
    terms = _DURATION_TERM.findall(text)
    assert terms and "".join(number + unit for number, unit in terms) == text, text
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in terms)


def chat(client: OpenAI, text: str = "hello world", **kwargs: Any) -> Any:
    """A chat completion through `with_raw_response`, so tests can read the headers too."""
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **kwargs
    )


def stats(sim: RunningSimulator, **params: Any) -> dict[str, Any]:
    return httpx.get(f"{sim.base_url}/_simulator/chat/stats", params=params).json()


def outcome(call: Callable[[], Any]) -> str:
    """ "ok", or the name of the SDK exception the call raised."""
    try:
        call()
    except Exception as exc:
        return type(exc).__name__
    return "ok"


# ---------------------------------------------------------------------------------------------------
# answers


def test_every_endpoint_answers_like_openai(start: Start) -> None:
    client = start().client()
    raw = chat(client, "say something nice")
    completion = raw.parse()
    assert raw.status_code == 200 and raw.headers["x-request-id"].startswith("req_")
    assert completion.choices[0].message.content == "echo: say something nice"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 4)
    assert completion.id != chat(client, "say something nice").parse().id  # one id per call

    embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"], dimensions=4)
    assert [len(item.embedding) for item in embeddings.data] == [4, 4]
    assert embeddings.usage.prompt_tokens == 3

    text = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="once upon")
    assert text.choices[0].text == "echo: once upon" and text.usage.total_tokens == 5

    response = client.responses.create(model="gpt-4o-mini", input="hi there")
    assert response.output_text == "echo: hi there" and response.usage.input_tokens == 2


def test_errors_auth_and_streaming(start: Start) -> None:
    sim = start()
    client = sim.client()
    with pytest.raises(openai.InternalServerError) as server_error:
        chat(client, "please SIMULATE_ERROR_503")
    assert server_error.value.status_code == 503 and server_error.value.type == "server_error"
    with pytest.raises(openai.BadRequestError):
        chat(client, "SIMULATE_ERROR_400")
    with pytest.raises(openai.BadRequestError) as streaming:
        chat(client, stream=True)
    assert streaming.value.param == "stream"
    with pytest.raises(openai.BadRequestError):  # the endpoint's own validation, from lines.py
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    with pytest.raises(openai.AuthenticationError) as auth:
        chat(sim.client(api_key="sk-wrong"))
    assert auth.value.code == "invalid_api_key"
    no_key = httpx.post(f"{sim.base_url}/v1/embeddings", json={"model": "e", "input": "x"})
    assert no_key.status_code == 401 and set(no_key.json()["error"]) == {"message", "type", "param", "code"}
    assert stats(sim)["answered"] == {"400": 3, "401": 2, "503": 1}


def test_unsupported_endpoint_is_a_404_until_config_changes(start: Start) -> None:
    sim = start(chat_unsupported_endpoints=["/v1/embeddings"])
    client = sim.client()
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="e", input="x")
    assert chat(client).status_code == 200
    assert sim.set_config(chat_unsupported_endpoints=[]).status_code == 200
    assert client.embeddings.create(model="e", input="x").usage.total_tokens == 1
    bad = sim.set_config(chat_unsupported_endpoints=["/v1/images"])
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("chat_unsupported_endpoints")


# ---------------------------------------------------------------------------------------------------
# rate limits


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.012, "12ms"), (0.0004, "1ms"), (1, "1s"), (17.28, "17.28s"), (360, "6m0s"),
     (3723.5, "1h2m3.5s")],
)  # fmt: skip
def test_reset_durations_are_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
    assert parse_go_duration(text) == pytest.approx(seconds, abs=0.001)


def test_request_bucket_starts_full_then_refills(start: Start) -> None:
    """30 rpm refills one request every 2 s; 30 parallel calls take far less, so counts are exact."""
    sim = start(chat_rpm=30)
    client = sim.client()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: chat(client), range(30)))
    assert {raw.status_code for raw in answers} == {200}
    assert {raw.headers["x-ratelimit-limit-requests"] for raw in answers} == {"30"}
    remaining = sorted(int(raw.headers["x-ratelimit-remaining-requests"]) for raw in answers)
    assert remaining == list(range(30))  # one request taken per call, the bucket started full
    resets = [parse_go_duration(raw.headers["x-ratelimit-reset-requests"]) for raw in answers]
    assert all(0 < reset <= 60 for reset in resets)
    assert "x-ratelimit-limit-tokens" not in answers[0].headers  # no token limit set

    with pytest.raises(openai.RateLimitError) as limited:
        chat(client)
    error, headers = limited.value, limited.value.response.headers
    assert (error.type, error.code) == ("requests", "rate_limit_exceeded")
    wait_ms = int(headers["retry-after-ms"])
    assert 1000 < wait_ms <= 2000 and headers["retry-after"] == "2"  # whole seconds, rounded up
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 58 < parse_go_duration(headers["x-ratelimit-reset-requests"]) <= 60

    time.sleep(wait_ms / 1000)
    assert chat(client).status_code == 200
    with pytest.raises(openai.RateLimitError):
        chat(client)  # that one token was all there was
    snapshot = stats(sim)
    assert snapshot["rate_limited"]["requests"] == 2 and snapshot["admitted"] == snapshot["ok"] == 31
    assert snapshot["answered"] == {"200": 31, "429": 2}
    assert snapshot["window"]["max_admitted"] == 31  # within 60 s: the full bucket plus one refill


def test_buckets_are_per_api_key(start: Start) -> None:
    sim = start(api_key=None, chat_rpm=1)
    assert chat(sim.client(api_key="sk-a")).status_code == 200
    with pytest.raises(openai.RateLimitError):
        chat(sim.client(api_key="sk-a"))
    assert chat(sim.client(api_key="sk-b")).status_code == 200


def test_token_bucket_charges_the_answers_usage(start: Start) -> None:
    sim = start(chat_tpm=20)
    client = sim.client()
    first = chat(client, "one two three")  # 3 prompt words + "echo: one two three" = 7 tokens
    assert first.parse().usage.total_tokens == 7
    assert first.headers["x-ratelimit-limit-tokens"] == "20"
    assert first.headers["x-ratelimit-remaining-tokens"] == "13"
    assert "x-ratelimit-limit-requests" not in first.headers
    assert chat(client, "one two three").headers["x-ratelimit-remaining-tokens"] == "6"

    with pytest.raises(openai.RateLimitError) as limited:
        chat(client, "one two three")  # 7 > 6 left: one token short, refilled in 3 s
    assert (limited.value.type, limited.value.code) == ("tokens", "rate_limit_exceeded")
    assert limited.value.response.headers["retry-after"] == "3"
    assert 2900 < int(limited.value.response.headers["retry-after-ms"]) <= 3000

    with pytest.raises(openai.RateLimitError) as too_large:  # 21 tokens never fit in 20
        chat(client, " ".join(["word"] * 10))
    assert "too large" in too_large.value.message and "retry-after" not in too_large.value.response.headers
    assert stats(sim)["rate_limited"] == {"requests": 0, "tokens": 2, "concurrency": 0}


def test_header_switches_change_at_runtime(start: Start) -> None:
    sim = start(chat_rpm=1)
    client = sim.client()
    chat(client)

    def limited_headers() -> httpx.Headers:
        with pytest.raises(openai.RateLimitError) as limited:
            chat(client)
        return limited.value.response.headers

    headers = limited_headers()
    assert {"retry-after", "retry-after-ms", "x-ratelimit-reset-requests"} <= set(headers)
    assert 58 <= int(headers["retry-after"]) <= 60
    sim.set_config(chat_retry_after="seconds")
    headers = limited_headers()
    assert "retry-after" in headers and "retry-after-ms" not in headers
    sim.set_config(chat_retry_after="none", chat_ratelimit_headers=False)
    headers = limited_headers()
    assert not [name for name in headers if name.startswith(("retry-after", "x-ratelimit"))]

    assert sim.set_config(chat_rpm=None).json()["chat_rpm"] is None  # explicit null: unlimited again
    assert chat(client).status_code == 200


def test_concurrency_cap_and_latency(start: Start) -> None:
    sim = start(chat_max_concurrency=2, chat_latency_seconds=0.5)
    client = sim.client()

    def timed_call(delay: float) -> tuple[str, float]:
        time.sleep(delay)  # the third call arrives while the first two are in flight
        began = time.monotonic()
        result = outcome(lambda: chat(client))
        return result, time.monotonic() - began

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(timed_call, [0, 0, 0.2]))
    assert [result for result, _ in results] == ["ok", "ok", "RateLimitError"]
    assert all(elapsed >= 0.5 for _, elapsed in results[:2]) and results[2][1] < 0.4
    snapshot = stats(sim)
    assert snapshot["max_in_flight"] == 2 and snapshot["in_flight"] == 0
    assert snapshot["rate_limited"]["concurrency"] == 1


# ---------------------------------------------------------------------------------------------------
# faults


def test_every_nth_call_fails_with_the_configured_status(start: Start) -> None:
    sim = start(chat_fail_every=3, chat_fail_status=503)
    client = sim.client()
    assert [outcome(lambda: chat(client)) for _ in range(6)] == ["ok", "ok", "InternalServerError"] * 2
    snapshot = stats(sim)
    assert snapshot["faults"]["fail"] == 2 and snapshot["answered"] == {"200": 4, "503": 2}


def test_fault_rate_is_seeded_and_restarts_on_reset(start: Start) -> None:
    sim = start(chat_fail_rate=0.5, chat_fault_seed=7)
    client = sim.client()
    first = [outcome(lambda: chat(client)) for _ in range(10)]
    assert 0 < first.count("InternalServerError") < 10
    httpx.delete(f"{sim.base_url}/_simulator/chat/stats")
    assert [outcome(lambda: chat(client)) for _ in range(10)] == first
    sim.set_config(chat_fault_seed=8)  # a new seed draws another sequence
    assert [outcome(lambda: chat(client)) for _ in range(10)] != first
    bad = sim.set_config(chat_timeout_rate=0.6)  # 0.5 + 0.6 > 1
    assert bad.status_code == 400 and "add up to more than 1" in bad.json()["error"]["message"]


def test_timeout_hangs_until_the_client_gives_up(start: Start) -> None:
    sim = start(chat_timeout_every=1, chat_hang_seconds=30)
    began = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(sim.client().with_options(timeout=0.3))
    assert time.monotonic() - began < 2
    deadline = time.monotonic() + 2
    while stats(sim)["in_flight"] and time.monotonic() < deadline:  # the hang ends with the client
        time.sleep(0.02)
    snapshot = stats(sim)
    assert snapshot["in_flight"] == 0 and snapshot["faults"]["timeout"] == 1 and snapshot["answered"] == {}

    sim.set_config(chat_hang_seconds=0.2)  # a patient client gets the answer, late
    assert chat(sim.client().with_options(timeout=5)).status_code == 200


def test_reset_closes_the_connection_without_an_answer(start: Start) -> None:
    sim = start(chat_reset_every=2)
    client = sim.client()
    assert chat(client).status_code == 200
    with pytest.raises(openai.APIConnectionError) as reset:
        chat(client)
    assert not isinstance(reset.value, openai.APITimeoutError)
    # The SDK's transport (httpx2) saw the reset while reading, not a timeout or an HTTP status.
    assert type(reset.value.__cause__).__name__ in ("ReadError", "RemoteProtocolError")
    assert chat(client).status_code == 200  # the client recovers on a new connection
    snapshot = stats(sim)
    assert snapshot["faults"]["reset"] == 1 and snapshot["answered"] == {"200": 2}


def test_malformed_json_reaches_the_sdk_as_a_decode_error(start: Start) -> None:
    sim = start(chat_malformed_every=1)
    # openai 3.x parses a 200 `application/json` body with json.loads and lets the error through.
    with pytest.raises(json.JSONDecodeError):
        sim.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    raw = httpx.post(
        f"{sim.base_url}/v1/embeddings",
        json={"model": "e", "input": "x"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        raw.json()
    snapshot = stats(sim)
    assert snapshot["faults"]["malformed"] == 2 and snapshot["ok"] == 0


# ---------------------------------------------------------------------------------------------------
# counters


def test_counters_repeats_and_windows(start: Start) -> None:
    sim = start()
    client = sim.client()
    body_a = {"model": "m", "messages": [{"role": "user", "content": "line a"}]}
    body_b = {"model": "m", "messages": [{"role": "user", "content": "line b"}]}

    def send(body: dict[str, Any] | None) -> Any:
        if body is None:
            return client.embeddings.create(model="e", input="x")
        return client.chat.completions.create(**body)

    with ThreadPoolExecutor(5) as pool:  # five calls at once, then three more well apart
        list(pool.map(send, [body_a, body_a, body_b, body_a, None]))
    time.sleep(0.8)
    for body in (body_b, body_b, body_b):
        client.chat.completions.create(**body)

    snapshot = stats(sim, window=0.4, by_body=True)
    assert snapshot["calls"]["total"] == 8 and snapshot["calls"]["/v1/chat/completions"] == 7
    assert snapshot["calls"]["/v1/embeddings"] == 1 and snapshot["calls"]["/v1/responses"] == 0
    assert snapshot["bodies"] == {"distinct": 3, "sends": 8, "repeats": 5, "max_sends": 4, "ok_repeats": 5}
    fingerprint_a = hashlib.sha256(orjson.dumps(body_a, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert snapshot["by_body"][fingerprint_a] == {"sends": 3, "ok": 3}
    assert snapshot["window"] == {"seconds": 0.4, "max_admitted": 5, "max_ok": 5}
    assert stats(sim)["window"]["max_admitted"] == 8  # the default window is 60 s
    assert sim.calls()["openai"]["chat.completions"] == 7  # the app-wide call counter sees them too

    reset = httpx.delete(f"{sim.base_url}/_simulator/chat/stats").json()
    assert reset["calls"]["total"] == 0 and reset["bodies"]["distinct"] == 0 and reset["answered"] == {}
