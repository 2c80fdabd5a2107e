"""The dashboard in a real browser (the OS's headless Chromium), against the API, the worker and a slow
simulated upstream: sign in, watch a batch run to completion with its progress bar moving (the page
refreshes itself), open its requests, filter them, open one and read its response, cancel a running
batch, sign out; and another org's batch id in the URL is "not found", never its data.

Set `BATCHWAY_DASHBOARD_SHOTS=/some/dir` to keep a screenshot of every page it visits.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import pytest
from sqlmodel import Session

from batchway import plans
from batchway.settings import Settings
from batchway.storage.db import make_engine
from tests.batch_helpers import chat_line, jsonl, wait_for
from tests.test_dashboard import serve_dashboard

if TYPE_CHECKING:  # imported in the test: without playwright the fixtures skip (or fail in CI) instead
    from playwright.async_api import Page

pytestmark = pytest.mark.usefixtures("worker")

LINES_PER_SECOND = 4.0  # the simulated upstream answers this many lines a second
WATCHED_LINES = 40  # ~10 s in progress: several refreshes of the page see the bar move
CANCELLED_LINES = 400  # ~100 s: cancelled long before it could end
FAILING = {"w-7", "w-21", "w-33"}
SHOTS = os.environ.get("BATCHWAY_DASHBOARD_SHOTS")


@pytest.fixture(scope="module")
def dashboard_url(base_settings: Settings) -> Iterator[str]:
    """The API with the dashboard, on the database and task queue the session's worker serves."""
    with serve_dashboard(base_settings) as url:
        yield url


async def snapshot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def create(client: openai.AsyncOpenAI, lines: list[dict[str, object]], **headers: str) -> str:
    upload = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers=headers or None,
    )
    return batch.id


async def wait_until_answering(client: openai.AsyncOpenAI, batch_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        counts = batch.request_counts
        if batch.status == "in_progress" and counts is not None and counts.completed + counts.failed > 0:
            return
        assert batch.status in ("validating", "in_progress"), batch.status
        assert time.monotonic() < deadline, f"{batch_id} still {batch.status}"
        await asyncio.sleep(0.2)  # never time.sleep: the worker runs on this event loop


def put_on_plan(settings: Settings, org: str, monthly_token_cap: int) -> None:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        plans.set_plan(
            session, f"plan-{org}", monthly_token_cap=monthly_token_cap, feedback=False, judge_sample_rate=0
        )
        plans.set_org(session, org, plan=f"plan-{org}")
    engine.dispose()


async def test_an_org_watches_filters_inspects_and_cancels_its_batches(
    dashboard_url: str, base_settings: Settings, start_simulator, new_org, page: Page
) -> None:
    from playwright.async_api import expect

    org, key = new_org({"openai": start_simulator(lines_per_second=LINES_PER_SECOND)})
    _, stranger_key = new_org({"openai": start_simulator()})
    api = openai.AsyncOpenAI(base_url=f"{dashboard_url}/v1", api_key=key, max_retries=0)
    lines = [
        chat_line(cid, "SIMULATE_ERROR_400" if cid in FAILING else f"what is {i} squared?")
        for i, cid in enumerate(f"w-{n}" for n in range(WATCHED_LINES))
    ]
    watched = await create(api, lines, **{"batchway-session-id": "sess-demo", "x-team": "search"})

    # Sign in: the login page, then back to where we were going.
    await page.goto(f"{dashboard_url}/dashboard/batches")
    await expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await snapshot(page, "1-login")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/dashboard/batches$"))
    await expect(page.get_by_text(org, exact=True)).to_be_visible()

    # The batch runs to completion while the page refreshes itself: the bar moves through partial values.
    bar = page.get_by_role("progressbar", name=f"Progress of {watched}")
    status = page.locator(f'tr[data-batch-id="{watched}"] [data-status]')
    seen: list[int] = []
    shot_taken = False
    deadline = time.monotonic() + 90
    while await status.get_attribute("data-status") != "completed":
        assert time.monotonic() < deadline, f"the page never showed {watched} completed (saw {seen})"
        value = int(await bar.get_attribute("aria-valuenow") or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
        if 0 < value < WATCHED_LINES and not shot_taken:
            await snapshot(page, "2-batches-running")
            shot_taken = True
        await asyncio.sleep(0.3)
    partial = sorted({value for value in seen if 0 < value < WATCHED_LINES})
    assert len(partial) >= 2, f"the progress bar did not move on the page: {seen}"
    await expect(bar).to_have_attribute("aria-valuenow", str(WATCHED_LINES))
    await expect(bar).to_have_attribute(
        "aria-valuetext", f"{WATCHED_LINES} of {WATCHED_LINES} done, {len(FAILING)} failed"
    )
    await expect(
        page.locator(f'tr[data-batch-id="{watched}"]').get_by_role("link", name="Output")
    ).to_be_visible()

    # Clicking the batch opens the requests page filtered to it.
    await page.get_by_role("link", name=watched, exact=True).click()
    await expect(page).to_have_url(re.compile(rf"/dashboard/requests\?batch_id={watched}$"))
    await expect(page.get_by_text(f"{WATCHED_LINES} requests match")).to_be_visible()
    await expect(page.locator("a.row-link")).to_have_count(WATCHED_LINES)
    await snapshot(page, "3-requests-of-batch")

    # Filter to the failed lines: the filter lands in the URL.
    await page.get_by_label("Status").select_option("error")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(rf"/dashboard/requests\?batch_id={watched}&status=error"))
    await expect(page.get_by_text(f"{len(FAILING)} requests match")).to_be_visible()
    assert set(await page.locator("a.row-link").all_inner_texts()) == FAILING
    await page.get_by_label("Status").select_option("ok")
    await page.get_by_label("Session id").fill("sess-demo")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"status=ok&.*session_id=sess-demo"))
    await expect(page.get_by_text(f"{WATCHED_LINES - len(FAILING)} requests match")).to_be_visible()
    await snapshot(page, "4-requests-filtered")

    # Open one request (keyboard: its link is a plain link) and read what was asked and answered.
    await page.get_by_role("link", name="w-5", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=re.compile("w-5"))).to_be_visible()
    await expect(page.get_by_role("region", name="Request body")).to_contain_text("what is 5 squared?")
    await expect(page.get_by_role("region", name=re.compile("^Response"))).to_contain_text(
        "echo: what is 5 squared?"
    )
    headers = page.get_by_role("region", name="Headers sent with the batch")
    await expect(headers).to_contain_text("x-team")
    await expect(headers.get_by_role("cell", name="authorization", exact=True)).to_have_count(0)
    await snapshot(page, "5-request-detail")

    # The month's usage, charted, against the plan's cap.
    put_on_plan(base_settings, org, monthly_token_cap=5_000)
    await page.get_by_role("link", name="Usage").click()
    await expect(page.get_by_role("img", name=re.compile("Tokens by day"))).to_be_visible()
    await expect(page.get_by_role("meter", name="Tokens used of the monthly cap")).to_be_visible()
    await snapshot(page, "6-usage")

    # Cancel a running batch from its row.
    doomed = await create(api, [chat_line(f"c-{n}", "slow") for n in range(CANCELLED_LINES)])
    await wait_until_answering(api, doomed)
    await page.get_by_role("link", name="Batches").click()
    row = page.locator(f'tr[data-batch-id="{doomed}"]')
    await expect(row.locator("[data-status]")).to_have_attribute("data-status", "in_progress")
    await snapshot(page, "7-batches-before-cancel")
    # With the keyboard: focus stays on the button while the list refreshes under it, Enter cancels.
    button = row.get_by_role("button", name=f"Cancel batch {doomed}")
    await button.focus()
    before_refresh = await button.element_handle()
    deadline = time.monotonic() + 15
    while await before_refresh.evaluate("element => element.isConnected"):
        assert time.monotonic() < deadline, "the batches list did not refresh"
        await asyncio.sleep(0.2)
    assert await page.evaluate("document.activeElement.id") == f"cancel-{doomed}"
    page.once("dialog", lambda dialog: dialog.accept())
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status").filter(has_text="Cancel requested")).to_be_visible()
    await expect(row.locator("[data-status]")).to_have_attribute(
        "data-status", re.compile("cancelling|cancelled")
    )
    ended = await wait_for(api, doomed, timeout=60)
    assert ended.status == "cancelled" and ended.request_counts.completed < CANCELLED_LINES
    await expect(row.locator("[data-status]")).to_have_attribute("data-status", "cancelled")  # refreshed
    await snapshot(page, "8-batches-after-cancel")

    # Sign out: the session is gone.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await page.goto(f"{dashboard_url}/dashboard/requests?batch_id={watched}")
    await expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))

    # Another org signs in and puts the first org's batch id in the URL: "not found", nothing of it shown.
    await page.get_by_label("API key").fill(stranger_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    body = await page.locator("body").inner_text()
    assert "w-5" not in body and "sess-demo" not in body and "what is" not in body
    await snapshot(page, "9-other-org-not-found")
