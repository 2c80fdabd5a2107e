"""`batchway dev` as a user runs it: one command, a batch with no keys, Ctrl-C, and a second start that
resumes the unfinished batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai

from batchway.servers import free_port, wait_for_port
from tests.batch_helpers import chat_line, jsonl

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def dev_ports() -> dict[str, int]:
    return {name: free_port() for name in ("port", "temporal-port", "ui-port", "simulator-port")}


def start_dev(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    """`batchway dev` in its own process group (so a test can kill the whole stack at once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHWAY_", "OPENAI_"))}
    env["BATCHWAY_POLL_INTERVAL_MAX_SECONDS"] = "1"
    cmd = [sys.executable, "-m", "batchway.cli", "dev", "--data-dir", str(data_dir)]
    for flag, port in ports.items():
        cmd += [f"--{flag}", str(port)]
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    # Generous (a loaded machine starts the Temporal dev server slowly), but never blind: a stack that
    # exits or hangs on the way up fails the test at once with everything it printed.
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            wait_for_port("127.0.0.1", ports["port"], timeout=1)
            return process
        except TimeoutError:
            continue
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=30)
    raise AssertionError(f"`batchway dev` did not listen (exit code {process.returncode}):\n{output}")


def stop_dev(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def test_dev_runs_a_batch_and_resumes_after_ctrl_c(tmp_path: Path) -> None:
    ports = dev_ports()
    dev = start_dev(tmp_path, ports)
    try:
        key = (tmp_path / "dev-api-key").read_text().strip()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports['port']}/v1", api_key=key, max_retries=0)
        lines = [chat_line(f"r{i}", f"hello {i}") for i in range(2500)]  # ~12 s at the simulator's speed
        upload = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 30
        while client.batches.retrieve(batch.id).status != "in_progress":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        output = stop_dev(dev)
    assert "API key" in output and "Temporal UI" in output and "batchway dev stopped." in output

    dev = start_dev(tmp_path, ports)
    try:
        assert (tmp_path / "dev-api-key").read_text().strip() == key  # same org and key
        deadline = time.monotonic() + 90
        while (current := client.batches.retrieve(batch.id)).status not in TERMINAL:
            assert time.monotonic() < deadline, current.status
            time.sleep(0.5)
        assert current.status == "completed"
        assert current.request_counts.completed == 2500
        assert len(client.files.content(current.output_file_id).text.splitlines()) == 2500
    finally:
        stop_dev(dev)


def test_dev_killed_when_the_upstream_finishes_completes_within_seconds_of_restart(tmp_path: Path) -> None:
    """SIGKILL the whole stack (API, worker, Temporal, simulator) once the upstream is done: the restarted
    stack finishes the batch in seconds, not after a 30-minute activity timeout."""
    ports = dev_ports()
    dev = start_dev(tmp_path, ports)
    try:
        key = (tmp_path / "dev-api-key").read_text().strip()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports['port']}/v1", api_key=key, max_retries=0)
        lines = [chat_line(f"k{i}", f"hello {i}") for i in range(1000)]  # ~5 s at the simulator's speed
        upload = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 60
        while (current := client.batches.retrieve(batch.id)).request_counts.completed < 1000:
            assert current.status not in TERMINAL and time.monotonic() < deadline, current.status
            time.sleep(0.05)
    finally:
        os.killpg(dev.pid, signal.SIGKILL)
        dev.communicate(timeout=30)

    dev = start_dev(tmp_path, ports)
    try:
        restarted = time.monotonic()
        deadline = restarted + 60
        while (current := client.batches.retrieve(batch.id)).status not in TERMINAL:
            assert time.monotonic() < deadline, current.status
            time.sleep(0.2)
        recovery = time.monotonic() - restarted
        print(f"\nbatch completed {recovery:.1f} s after the killed stack restarted")
        assert current.status == "completed" and current.request_counts.completed == 1000
        assert len(client.files.content(current.output_file_id).text.splitlines()) == 1000
        assert recovery < 40
    finally:
        stop_dev(dev)
