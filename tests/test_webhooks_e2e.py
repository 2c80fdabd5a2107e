"""A batch's end reaches its org's webhook: a signed event the official openai SDK verifies, retried by
Temporal until the receiver takes it, every attempt in the delivery log."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import openai
import pytest
from fastapi import FastAPI, Request, Response
from sqlmodel import Session

from batchway import webhook_endpoints
from batchway.secret_box import load_box
from batchway.storage.db import make_engine
from tests.batch_helpers import chat_line, submit, wait_for
from tests.servers import serve_in_thread

pytestmark = pytest.mark.usefixtures("worker")


class Receiver:
    """Records every delivery; answers the scripted statuses in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/hook")(self.hook)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.received.append((body, dict(request.headers)))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)


def set_webhook(base_settings, org: str, url: str) -> str:
    engine = make_engine(base_settings.resolved_database_url)
    with Session(engine) as session:
        secret = webhook_endpoints.set_endpoint(session, org, url, load_box(base_settings))
    engine.dispose()
    return secret


def deliveries(base_settings, org: str) -> list[Any]:
    engine = make_engine(base_settings.resolved_database_url)
    with Session(engine) as session:
        rows = webhook_endpoints.deliveries(session, org)
    engine.dispose()
    return rows


async def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)  # the worker runs on this event loop


async def test_a_completed_batch_is_announced_signed_after_retries(
    start_simulator, new_org, client_for, base_settings
) -> None:
    receiver = Receiver([500, 503])
    with serve_in_thread(receiver.app) as url:
        org, key = new_org({"openai": start_simulator()})
        secret = set_webhook(base_settings, org, url + "/hook")
        client = client_for(key)
        batch = await wait_for(client, (await submit(client, [chat_line("w", "hi")])).id)
        await wait_until(lambda: len(receiver.received) >= 3)
        await wait_until(lambda: len(deliveries(base_settings, org)) >= 3)
    body, headers = receiver.received[-1]
    verifier = openai.OpenAI(api_key="unused", webhook_secret=secret)
    event = verifier.webhooks.unwrap(body, headers)
    assert event.type == "batch.completed" and event.data.id == batch.id
    ids = {h["webhook-id"] for _, h in receiver.received}
    assert len(ids) == 1, "every attempt carries the same event id"
    log = deliveries(base_settings, org)
    assert [(d.attempt, d.ok) for d in reversed(log)] == [(1, False), (2, False), (3, True)]
    with pytest.raises(openai.InvalidWebhookSignatureError):
        verifier.webhooks.unwrap(body + b" ", headers)


async def test_a_receiver_that_says_gone_is_not_retried(
    start_simulator, new_org, client_for, base_settings
) -> None:
    receiver = Receiver([410])
    with serve_in_thread(receiver.app) as url:
        org, key = new_org({"openai": start_simulator()})
        set_webhook(base_settings, org, url + "/hook")
        client = client_for(key)
        created = await submit(client, [chat_line(f"c-{i}", "hi") for i in range(20)])
        await client.batches.cancel(created.id)
        await wait_for(client, created.id)
        await wait_until(lambda: len(deliveries(base_settings, org)) >= 1)
        await asyncio.sleep(3)  # a retry would come within 2 s
    assert len(receiver.received) == 1
    log = deliveries(base_settings, org)
    assert len(log) == 1 and not log[0].ok and log[0].status_code == 410
    assert log[0].event_type == "batch.cancelled"
