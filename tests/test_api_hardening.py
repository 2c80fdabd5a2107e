"""The API as an attacker and a busy client would use it: nothing read before the caller is known, bodies
capped, strings that cannot be stored or rendered refused at the edge, revoked keys refused within a
bounded time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import psutil
import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from batchway import tenancy
from batchway.cli import app
from batchway.servers import free_port, wait_for_port
from batchway.settings import get_settings
from batchway.storage.db import make_engine
from tests.batch_helpers import chat_line, submit, upload, wait_for

pytestmark = pytest.mark.usefixtures("worker")
MB = 1024 * 1024


def huge_body(sent: list[int], size: int = 100 * MB) -> Iterator[bytes]:
    chunk = b"x" * MB
    for _ in range(size // MB):
        sent[0] += len(chunk)
        yield chunk


@pytest.fixture
def api_process(base_settings) -> Iterator[tuple[str, psutil.Process]]:
    """`batchway api` in a process of its own, so its memory can be watched."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHWAY_")}
    env |= {
        "BATCHWAY_DATA_DIR": str(base_settings.data_dir),
        "BATCHWAY_TEMPORAL_ADDRESS": base_settings.temporal_address,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "batchway.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}/v1", psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_unauthenticated_bodies_are_not_read(api_process: tuple[str, psutil.Process]) -> None:
    url, process = api_process
    for path, content_type in (
        ("/batches", "application/json"),
        ("/files", "multipart/form-data; boundary=x"),
    ):
        baseline = process.memory_info().rss
        peak = [baseline]
        done = threading.Event()

        def watch(done: threading.Event, peak: list[int]) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, args=(done, peak))
        watcher.start()
        sent = [0]
        try:
            with httpx.Client(timeout=30) as raw:
                response = raw.post(
                    url + path, content=huge_body(sent), headers={"content-type": content_type}
                )
            assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        except httpx.TransportError:
            pass  # the server answered 401 and hung up before the whole body went out
        finally:
            done.set()
            watcher.join()
        grew = (peak[0] - baseline) / MB
        assert grew < 30, (
            f"{path}: the API grew {grew:.0f} MiB on an unauthenticated {sent[0] // MB} MiB body"
        )


async def test_json_bodies_are_capped(api_url: str, new_org, start_simulator) -> None:
    _, key = new_org({"openai": start_simulator()})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    big = b'{"metadata": {"k": "' + b"v" * (2 * MB) + b'"}}'
    with httpx.Client(headers=headers) as raw:
        declared = raw.post(api_url + "/batches", content=big)
        chunked = raw.post(api_url + "/batches", content=iter([big[:MB], big[MB:]]))
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "request_too_large"


async def test_lone_surrogates_and_nul_are_refused_naming_the_field(
    start_simulator, new_org, client_for
) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    file_id = await upload(client, [chat_line("a", "hi")])
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    rest = b'"completion_window": "24h"'
    cases = {
        "metadata.team": b'{"input_file_id": "%s", "endpoint": "/v1/chat/completions", '
        + rest
        + b', "metadata": {"team": "\\ud800"}}',
        "endpoint": b'{"input_file_id": "%s", "endpoint": "/v1/chat/completions\\u0000", ' + rest + b"}",
        "input_file_id": b'{"input_file_id": "%s\\udfff", "endpoint": "/v1/chat/completions", ' + rest + b"}",
    }
    with httpx.Client(headers=headers) as raw:
        for field, body in cases.items():
            response = raw.post(
                str(client.base_url) + "batches", content=body.replace(b"%s", file_id.encode())
            )
            assert response.status_code == 400, (field, response.text)
            assert response.json()["error"]["param"] == field
    assert (await client.batches.list()).data == []  # nothing stored, and listing still works
    batch = await wait_for(
        client, (await submit(client, [chat_line("ok", "fine")], metadata={"team": "é ü"})).id
    )
    assert batch.metadata == {"team": "é ü"}


async def test_revoked_keys_are_refused_within_seconds(
    start_simulator, new_org, client_for, base_settings, monkeypatch
) -> None:
    org, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    assert (await client.batches.list()).data == []  # the key is now cached by the API
    monkeypatch.setenv("BATCHWAY_DATA_DIR", str(base_settings.data_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    listed = runner.invoke(app, ["keys", "list", "--org", org])
    assert key[:7] in listed.output and "active" in listed.output and "last used" in listed.output
    key_id = listed.output.split("\t", 1)[0].strip()
    assert runner.invoke(app, ["keys", "revoke", key_id, "--org", org]).exit_code == 0
    get_settings.cache_clear()
    revoked_at = time.monotonic()
    while True:
        try:
            await client.batches.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() - revoked_at < 5, "a revoked key must be refused within the documented 2 s"
        await asyncio.sleep(0.2)
    engine = make_engine(base_settings.resolved_database_url)
    with Session(engine) as session:
        other = tenancy.create_api_key(session, tenancy.get_org_by_name(session, org))
    engine.dispose()
    assert (await client_for(other).batches.list()).data == []  # the org's other keys still work
    assert "revoked" in runner.invoke(app, ["keys", "list", "--org", org]).output
