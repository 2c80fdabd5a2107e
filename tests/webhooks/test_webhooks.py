"""Webhook events, signatures and delivery, judged by the official `openai` SDK (its event types and its
`webhooks.unwrap`) and by a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import base64
import re
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import get_args

import httpx
import openai
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response
from openai.types.webhooks import (
    BatchCancelledWebhookEvent,
    BatchCompletedWebhookEvent,
    BatchExpiredWebhookEvent,
    BatchFailedWebhookEvent,
    UnwrapWebhookEvent,
)
from pydantic import TypeAdapter

from batchway import lifecycle
from batchway.servers import free_port
from batchway.webhooks.delivery import DeliveryResult, deliver, event_body
from batchway.webhooks.events import batch_event, event_id, event_type_for
from batchway.webhooks.signing import new_secret, sign
from tests.servers import serve_in_thread

SDK_MODEL_BY_STATUS = {
    "completed": BatchCompletedWebhookEvent,
    "failed": BatchFailedWebhookEvent,
    "cancelled": BatchCancelledWebhookEvent,
    "expired": BatchExpiredWebhookEvent,
}
SLOW_ANSWER_SECONDS = 2.0  # kept short: the receiver finishes its sleep before the server can stop


def event_for(batch_id: str, status: str, created_at: int = 1_700_000_000) -> dict:
    return batch_event(batch_id, status, event_id=event_id(batch_id, status), created_at=created_at)


def unwrap(body: bytes, headers: dict[str, str], secret: str) -> object:
    return openai.OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(body, headers)


# --- events -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(SDK_MODEL_BY_STATUS))
def test_event_matches_the_sdk_model_for_its_status(status: str) -> None:
    event = event_for("batch_123", status, created_at=1_700_000_123)

    assert event == {
        "object": "event",
        "id": event_id("batch_123", status),
        "type": f"batch.{status}",
        "created_at": 1_700_000_123,
        "data": {"id": "batch_123"},
    }
    # Strict validation: `unwrap` itself only constructs loosely and would accept a malformed event.
    parsed = TypeAdapter(UnwrapWebhookEvent).validate_python(event)
    assert type(parsed) is SDK_MODEL_BY_STATUS[status]
    assert parsed.model_dump() == event


def test_the_sdk_spells_cancelled_with_two_ls() -> None:
    assert get_args(BatchCancelledWebhookEvent.model_fields["type"].annotation) == ("batch.cancelled",)
    assert event_type_for("cancelled") == "batch.cancelled"


def test_every_terminal_batch_status_has_an_event_and_no_other_does() -> None:
    assert {status for status in lifecycle.Status if event_type_for(status)} == lifecycle.TERMINAL
    for status in lifecycle.ACTIVE:
        with pytest.raises(ValueError, match="non-terminal"):
            batch_event("batch_1", status, event_id="evt_1", created_at=1)


def test_event_ids_are_stable_per_batch_and_status_and_shaped_like_openai() -> None:
    assert event_id("batch_1", "completed") == event_id("batch_1", lifecycle.Status.COMPLETED)
    ids = {event_id(batch, status) for batch in ("batch_1", "batch_2") for status in SDK_MODEL_BY_STATUS}
    assert len(ids) == 8
    assert all(re.fullmatch(r"evt_[0-9a-f]{32}", eid) for eid in ids)


# --- signing ------------------------------------------------------------------------------------------


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    headers = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


@pytest.mark.parametrize("status", sorted(SDK_MODEL_BY_STATUS))
def test_the_sdk_unwraps_our_signed_events(status: str) -> None:
    secret = new_secret()
    event = event_for("batch_sig", status)
    body = event_body(event)
    headers = sign(secret, msg_id=event["id"], timestamp=int(time.time()), body=body)

    unwrapped = unwrap(body, headers, secret)

    assert type(unwrapped) is SDK_MODEL_BY_STATUS[status]
    assert unwrapped.model_dump() == event


def test_the_sdk_accepts_a_timestamp_inside_its_five_minute_window() -> None:
    secret = new_secret()
    body = event_body(event_for("batch_window", "completed"))
    for skew in (-290, 290):
        headers = sign(secret, msg_id="evt_1", timestamp=int(time.time()) + skew, body=body)
        unwrap(body, headers, secret)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("body", "does not match"),
        ("secret", "does not match"),
        ("secret_without_prefix", "does not match"),
        ("stale", "too old"),
        ("future", "too new"),
        ("msg_id", "does not match"),
    ],
)
def test_the_sdk_rejects_a_tampered_delivery(tamper: str, message: str) -> None:
    secret = new_secret()
    body = event_body(event_for("batch_tamper", "failed"))
    now = int(time.time())
    # A minute past the SDK's 300 s tolerance: the SDK reads the clock again later, and a timestamp only 1 s
    # in the future was accepted when a second boundary fell in between.
    timestamp = {"stale": now - 360, "future": now + 360}.get(tamper, now)
    headers = sign(secret, msg_id="evt_1", timestamp=timestamp, body=body)
    verify_with = secret
    if tamper == "body":
        body = body.replace(b"batch_tamper", b"batch_other!")
    elif tamper == "secret":
        verify_with = new_secret()
    elif tamper == "secret_without_prefix":
        # The SDK base64-decodes only `whsec_` secrets; the bare base64 part is taken as raw key bytes.
        verify_with = secret.removeprefix("whsec_")
    elif tamper == "msg_id":
        headers["webhook-id"] = "evt_2"

    with pytest.raises(openai.InvalidWebhookSignatureError, match=message):
        unwrap(body, headers, verify_with)


@pytest.mark.parametrize("secret", ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!"])
def test_signing_refuses_a_malformed_secret(secret: str) -> None:
    with pytest.raises(ValueError):
        sign(secret, msg_id="evt_1", timestamp=1, body=b"{}")


# --- delivery -----------------------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook endpoint whose path scripts its answer: `/status/{code}` answers that status,
    `/slow` answers 200 after SLOW_ANSWER_SECONDS. It records every request."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.app = FastAPI()
        self.app.post("/status/{code}")(self._answer_status)
        self.app.post("/slow")(self._answer_slowly)

    async def _record(self, request: Request) -> None:
        body = await request.body()
        self.requests.append(ReceivedRequest(request.url.path, dict(request.headers), body))

    async def _answer_status(self, code: int, request: Request) -> Response:
        await self._record(request)
        return Response(content=f"answer {code}", status_code=code)

    async def _answer_slowly(self, request: Request) -> Response:
        await self._record(request)
        await asyncio.sleep(SLOW_ANSWER_SECONDS)
        return Response(status_code=200)

    def received(self, webhook_id: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.headers.get("webhook-id") == webhook_id]


class _HangUp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(65536)  # read the request, then close without a word


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with serve_in_thread(endpoint.app) as base_url:
        yield endpoint, base_url


@pytest.fixture(scope="module")
def hang_up_url() -> Iterator[str]:
    """A server that drops every connection without answering (uvicorn always answers something)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HangUp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http_client:
        yield http_client


async def test_a_delivery_arrives_exactly_as_signed_and_verifies_with_the_sdk(
    receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    endpoint, base_url = receiver
    secret = new_secret()
    event = event_for("batch_ok", "completed")
    now = int(time.time())

    result = await deliver(client, f"{base_url}/status/200", secret, event, now=now)

    assert result.ok and not result.retryable
    assert (result.status_code, result.error) == (200, None)
    assert 0 <= result.duration_ms < 5000
    [request] = endpoint.received(event["id"])
    assert request.body == event_body(event)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "batchway-webhooks"
    assert request.headers["webhook-id"] == event["id"]
    assert request.headers["webhook-timestamp"] == str(now)
    assert (
        request.headers["webhook-signature"]
        == sign(secret, msg_id=event["id"], timestamp=now, body=request.body)["webhook-signature"]
    )
    unwrapped = unwrap(request.body, request.headers, secret)
    assert isinstance(unwrapped, BatchCompletedWebhookEvent)
    assert unwrapped.data.id == "batch_ok"


async def test_a_retried_delivery_carries_the_same_event_id_and_a_fresh_signature(
    receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    endpoint, base_url = receiver
    secret = new_secret()
    event = event_for("batch_retry", "expired")
    now = int(time.time())

    first = await deliver(client, f"{base_url}/status/503", secret, event, now=now - 120)
    second = await deliver(client, f"{base_url}/status/200", secret, event, now=now)

    assert (first.ok, first.retryable, second.ok) == (False, True, True)
    attempts = endpoint.received(event["id"])
    assert [r.body for r in attempts] == [event_body(event)] * 2
    assert [r.headers["webhook-timestamp"] for r in attempts] == [str(now - 120), str(now)]
    assert isinstance(unwrap(attempts[1].body, attempts[1].headers, secret), BatchExpiredWebhookEvent)


@pytest.mark.parametrize(
    ("code", "ok", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (301, False, False),
        (400, False, False),
        (401, False, False),
        (404, False, False),
        (408, False, True),
        (410, False, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
        (503, False, True),
    ],
)
async def test_the_answer_status_decides_ok_and_retryable(
    receiver: tuple[Receiver, str], client: httpx.AsyncClient, code: int, ok: bool, retryable: bool
) -> None:
    endpoint, base_url = receiver
    event = event_for(f"batch_status_{code}", "failed")

    result = await deliver(client, f"{base_url}/status/{code}", new_secret(), event, now=int(time.time()))

    assert (result.status_code, result.ok, result.retryable) == (code, ok, retryable)
    if ok:
        assert result.error is None
    else:
        assert result.error is not None and result.error.startswith(f"HTTP {code}")
        assert f"answer {code}" in result.error  # the start of the receiver's answer, for the log
    assert len(endpoint.received(event["id"])) == 1  # redirects are not followed


async def test_410_gone_says_the_receiver_wants_no_more(
    receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    _, base_url = receiver
    result = await deliver(
        client,
        f"{base_url}/status/410",
        new_secret(),
        event_for("batch_gone", "failed"),
        now=int(time.time()),
    )
    assert result == DeliveryResult(
        status_code=410,
        ok=False,
        retryable=False,
        error="HTTP 410 Gone: the receiver asks for no more deliveries: answer 410",
        duration_ms=result.duration_ms,
    )


async def test_a_slow_receiver_times_out_retryably(
    receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    endpoint, base_url = receiver
    event = event_for("batch_slow", "completed")

    result = await deliver(
        client, f"{base_url}/slow", new_secret(), event, now=int(time.time()), timeout_seconds=0.3
    )

    assert (result.status_code, result.ok, result.retryable) == (None, False, True)
    assert result.error == "no answer within 0.3 s"
    assert 250 <= result.duration_ms < SLOW_ANSWER_SECONDS * 1000
    assert len(endpoint.received(event["id"])) == 1


async def test_a_dropped_connection_is_retryable(hang_up_url: str, client: httpx.AsyncClient) -> None:
    result = await deliver(
        client, hang_up_url, new_secret(), event_for("batch_drop", "completed"), now=int(time.time())
    )
    assert (result.status_code, result.ok, result.retryable) == (None, False, True)
    assert result.error is not None and result.error.startswith("RemoteProtocolError")


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    result = await deliver(
        client, url, new_secret(), event_for("batch_refused", "completed"), now=int(time.time())
    )
    assert (result.status_code, result.ok, result.retryable) == (None, False, True)
    assert result.error is not None and result.error.startswith("ConnectError")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "example.com/hook",
        "",
        "http:///no-host",
        "http://[::1",
    ],
)
async def test_urls_that_are_not_http_are_refused_without_retry(url: str, client: httpx.AsyncClient) -> None:
    result = await deliver(
        client, url, new_secret(), event_for("batch_url", "completed"), now=int(time.time())
    )
    assert (result.status_code, result.ok, result.retryable) == (None, False, False)
    assert result.error is not None and "webhook URL" in result.error
