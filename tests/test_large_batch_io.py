"""Finishing a large batch on SQLite must neither stall the worker's event loop (heartbeats, other batches'
activities and workflow tasks run on it) nor hold the database's write lock for long (the API and other
batches write too). The worker under test shares this test's event loop, so a ticker here sees every
stall of the worker's loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.batch_helpers import chat_line, submit, wait_for

pytestmark = pytest.mark.usefixtures("worker")
LINES = 50_000


class LoopLag:
    """The longest the event loop went without running this ticker (which asks to run every 10 ms)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - before - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


WRITER = """
import sqlite3, sys, time
db, stop_file = sys.argv[1], sys.argv[2]
connection = sqlite3.connect(db, timeout=60)
connection.execute("PRAGMA busy_timeout=60000")
worst = 0.0
while True:
    before = time.monotonic()
    connection.execute("UPDATE org SET name = name WHERE id = 'no-such-org'")
    connection.commit()
    worst = max(worst, time.monotonic() - before)
    try:
        open(stop_file).close()
        break
    except FileNotFoundError:
        time.sleep(0.02)
print(worst)
"""


class WriteLatency:
    """Small writes from another process, as the API makes them; records the slowest (a separate
    process, so only the database's lock can delay it, not this process's GIL)."""

    def __init__(self, database_path: str, scratch: Path) -> None:
        self.stop_file = scratch / "stop-writer"
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, database_path, str(self.stop_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.worst = 0.0

    def finish(self) -> None:
        self.stop_file.touch()
        output, _ = self.process.communicate(timeout=60)
        self.worst = float(output.strip())


async def test_finishing_a_large_batch_keeps_the_loop_and_the_database_free(
    start_simulator, new_org, client_for, base_settings, tmp_path: Path
) -> None:
    _, key = new_org({"openai": start_simulator(lines_per_second=1_000_000)})
    client = client_for(key)
    lines = [chat_line(f"big-{i}", f"line {i} " + "words " * 20) for i in range(LINES)]
    created = await submit(client, lines)  # before measuring: the test's own upload runs on this loop
    with LoopLag() as lag:
        writer = WriteLatency(base_settings.resolved_database_url.removeprefix("sqlite:///"), tmp_path)
        try:
            batch = await wait_for(client, created.id, timeout=300)
        finally:
            writer.finish()
    assert batch.status == "completed" and batch.request_counts.completed == LINES
    print(f"\nworst event-loop stall {lag.worst:.3f} s, worst concurrent write {writer.worst:.3f} s")
    # Generous bounds for a loaded 2-core machine (threads of this process, the API's and the simulator's
    # among them, share its GIL with the loop). One transaction for every line of a batch this size held
    # the write lock for ~3 s; reading or parsing the files on the loop stalls it for seconds.
    assert lag.worst < 2.0
    assert writer.worst < 1.5
