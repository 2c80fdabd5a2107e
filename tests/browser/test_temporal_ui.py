"""The dev stack's Temporal UI, in a real browser: filter workflows by a batch's org (`BatchOrg`), find
the batch (its workflow id is the batch id), open it and read its live progress line (the workflow's
`current_details`, which Temporal UI 2.54 renders on the workflow's "User Metadata" tab)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import openai
import pytest_asyncio

from batchway.servers import free_port, wait_for_port
from tests.batch_helpers import chat_line, jsonl
from tests.test_dev_stack import start_dev, stop_dev

if TYPE_CHECKING:  # imported in the test: without playwright the fixtures skip (or fail in CI) instead
    from playwright.async_api import Page

LINES = 10_000  # ~50 s in progress at the simulator's default 200 lines/s: the UI is read long before the end


@dataclass
class DevStack:
    api_url: str
    ui_url: str
    api_key: str


@pytest_asyncio.fixture
async def dev_stack(tmp_path: Path) -> AsyncIterator[DevStack]:
    """`batchway dev` as a subprocess, stopped with Ctrl-C (SIGINT). Request it before `page`, so a failed
    test's screenshot is taken while the UI still has a server behind it."""
    ports = {
        "port": free_port(),
        "temporal-port": free_port(),
        "ui-port": free_port(),
        "simulator-port": free_port(),
    }
    dev = await asyncio.to_thread(start_dev, tmp_path, ports)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", ports["ui-port"], 30)
        yield DevStack(
            api_url=f"http://127.0.0.1:{ports['port']}/v1",
            ui_url=f"http://127.0.0.1:{ports['ui-port']}",
            api_key=(tmp_path / "dev-api-key").read_text().strip(),
        )
    finally:
        output = await asyncio.to_thread(stop_dev, dev)
    assert "batchway dev stopped." in output


async def wait_until_running(client: openai.AsyncOpenAI, batch_id: str, timeout: float = 30) -> None:
    """Until the upstream has answered some lines, so the workflow's progress line has counts."""
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        counts = batch.request_counts
        if batch.status == "in_progress" and counts is not None and counts.completed + counts.failed > 0:
            return
        assert batch.status in ("validating", "in_progress"), batch.status
        assert time.monotonic() < deadline, f"still {batch.status} after {timeout} s"
        await asyncio.sleep(0.2)


async def test_temporal_ui_finds_a_batch_by_org_and_shows_its_progress(
    dev_stack: DevStack, page: Page
) -> None:
    from playwright.async_api import expect

    client = openai.AsyncOpenAI(base_url=dev_stack.api_url, api_key=dev_stack.api_key, max_retries=0)
    lines = [chat_line(f"ui{i}", f"hello {i}") for i in range(LINES)]
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    await wait_until_running(client, batch.id)

    # The workflows list with a visibility query in the URL: the UI applies it and shows it as a filter chip.
    query = quote("BatchOrg = 'default'")
    await page.goto(f"{dev_stack.ui_url}/namespaces/default/workflows?query={query}")
    await expect(page.get_by_title('BatchOrg = "default"')).to_be_visible()
    workflow_link = page.get_by_role("link", name=batch.id, exact=True)
    await expect(workflow_link).to_be_visible()

    await workflow_link.click()
    await page.wait_for_url(re.compile(rf"/namespaces/default/workflows/{batch.id}/[^/]+/"))
    await expect(page.get_by_role("heading", name=batch.id)).to_be_visible()
    await page.get_by_role("tab", name="User Metadata").click()
    await expect(page.get_by_role("heading", name="Current Details")).to_be_visible()
    # The markdown `**in_progress**: 123 of 10000 done, 0 failed`, rendered in an iframe.
    details = page.frame_locator("#user-metadata-current-details").locator("body")
    await expect(details).to_contain_text(re.compile(rf"in_progress: \d+ of {LINES} done, \d+ failed"))
    await expect(details.locator("strong")).to_have_text("in_progress")  # the markdown was rendered
