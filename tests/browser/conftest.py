"""Playwright fixtures driving the OS's headless Chromium (Debian's `chromium` package).

Playwright's own browser download does not work on these machines, so the browser is always the binary on
PATH. Without it the browser tests are skipped on a workstation but fail in CI (`CI` set, as `.ci/run`
does), where `.ci/run` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 30_000  # the Temporal UI can take a few seconds per page on a busy 2-core machine
# Playwright's launch() always starts Chromium on a fresh temporary profile (it refuses `--user-data-dir`
# in args: that is what launch_persistent_context is for), so every session gets a clean user data dir.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    """Skip on a workstation; in CI a missing browser is a broken environment, not a reason to skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("chromium is not installed: `apt-get install -y chromium` (.ci/run does it in CI)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed: install the `test` extra")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's report on the item, so fixtures can tell in teardown whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest_asyncio.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page in its own browser context; screenshot to tests/browser/artifacts/ if the test failed."""
    from playwright.async_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    new_page = await context.new_page()
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            path = ARTIFACTS / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".png")
            try:
                await new_page.screenshot(path=str(path), full_page=True, timeout=10_000)
                print(f"\nscreenshot of the failed page: {path} (at {new_page.url})")
            except Exception as err:  # a dead page must not hide the test's own failure
                print(f"\nno screenshot of the failed page: {err}")
        await context.close()
