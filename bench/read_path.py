"""Read-path benchmark: `GET /v1/batches/{id}` from many concurrent clients on loopback.

Starts a stack (the API is `batchway api`, one uvicorn worker in its own process), creates one small
batch and keeps it `in_progress` (slow simulated upstream), then, for each client kind, runs
`--concurrency` request loops for `--warmup` + `--seconds` (only the latter is measured):

- `httpx`: one httpx.AsyncClient capped at `--concurrency` connections (what a Python caller sees);
- `raw`: one keep-alive socket per loop speaking minimal HTTP/1.1, so the load generator costs little
  CPU and the figure is about the API (the bench shares the machine with the server).

    .venv/bin/python bench/read_path.py                  # 32 clients, 20 s, httpx then raw
    .venv/bin/python bench/read_path.py --seconds 60 --concurrency 64 --client raw
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import orjson
import psutil
from stack import MIB, RssSampler, machine, raise_on_sigterm, running_stack

BATCH_LINES = 100
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    measuring: bool = False

    def record(self, started: float, error: str | None) -> None:
        if not self.measuring:
            return
        if error is None:
            self.latencies.append(time.perf_counter() - started)
        else:
            self.errors[error] = self.errors.get(error, 0) + 1


async def httpx_loop(client: httpx.AsyncClient, path: str, load: Load, stop_at: float) -> None:
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        try:
            response = await client.get(path)
            load.record(started, None if response.status_code == 200 else f"HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            load.record(started, type(exc).__name__)


async def raw_loop(port: int, request: bytes, load: Load, stop_at: float) -> None:
    while time.perf_counter() < stop_at:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = CONTENT_LENGTH.search(head)
                await reader.readexactly(int(length[1]) if length else 0)
                status = int(head[9:12])
                load.record(started, None if status == 200 else f"HTTP {status}")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            load.record(started, type(exc).__name__)
        finally:
            writer.close()


async def run_load(kind: str, port: int, api_key: str, path: str, args: argparse.Namespace) -> Load:
    load = Load()
    stop_at = time.perf_counter() + args.warmup + args.seconds
    headers = {"Authorization": f"Bearer {api_key}"}
    async with contextlib.AsyncExitStack() as stack:
        if kind == "httpx":
            limits = httpx.Limits(
                max_connections=args.concurrency, max_keepalive_connections=args.concurrency
            )
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits)
            )
            loops = [httpx_loop(client, path, load, stop_at) for _ in range(args.concurrency)]
        else:
            request = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: {headers['Authorization']}\r\nAccept: application/json\r\n\r\n"
            ).encode()
            loops = [raw_loop(port, request, load, stop_at) for _ in range(args.concurrency)]
        tasks = [asyncio.create_task(loop) for loop in loops]
        await asyncio.sleep(args.warmup)
        load.measuring = True
        await asyncio.gather(*tasks)
    return load


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy (every process, not only ours)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass
class Row:
    client: str
    load: Load
    wall: float
    api_cpu: float
    bench_cpu: float
    machine_cpu: float
    rss_start: int
    rss_peak: int

    def cells(self, args: argparse.Namespace) -> list[str]:
        lat = sorted(self.load.latencies)
        ms = 1000
        return [
            self.client,
            str(args.concurrency),
            f"{args.seconds:g}",
            f"{len(lat):,}",
            str(sum(self.load.errors.values())),
            f"{len(lat) / args.seconds:,.0f}",
            f"{percentile(lat, 0.50) * ms:.1f}",
            f"{percentile(lat, 0.99) * ms:.1f}",
            f"{lat[-1] * ms:.0f}",
            f"{self.api_cpu / self.wall:.0%}",
            f"{self.bench_cpu / self.wall:.0%}",
            f"{self.machine_cpu / self.wall / (os.cpu_count() or 1):.0%}",
            f"{self.rss_start / MIB:.0f} -> {self.rss_peak / MIB:.0f}",
        ]


def measure(
    kind: str, stack_port: int, api_pid: int, api_key: str, path: str, args: argparse.Namespace
) -> Row:
    api, me = psutil.Process(api_pid), psutil.Process()
    print(
        f"{kind}: {args.concurrency} clients, {args.warmup:g} s warm-up + {args.seconds:g} s ...", flush=True
    )
    with RssSampler({"api": api_pid}) as rss:
        api_cpu, bench_cpu, busy = cpu_seconds(api), cpu_seconds(me), machine_busy_seconds()
        started = time.perf_counter()
        load = asyncio.run(run_load(kind, stack_port, api_key, path, args))
        wall = time.perf_counter() - started
        api_cpu, bench_cpu = cpu_seconds(api) - api_cpu, cpu_seconds(me) - bench_cpu
        busy = machine_busy_seconds() - busy
    if not load.latencies:
        raise RuntimeError(f"{kind}: no successful request; errors: {load.errors}")
    return Row(kind, load, wall, api_cpu, bench_cpu, busy, rss.first["api"], rss.peak["api"])


def upload_small_batch(client: openai.OpenAI) -> str:
    """One batch of BATCH_LINES lines, waited on until `in_progress`; returns its id."""
    line = {
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    data = b"".join(orjson.dumps({"custom_id": f"r{i}", **line}) + b"\n" for i in range(BATCH_LINES))
    uploaded = client.files.create(file=("input.jsonl", data), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while batch.status != "in_progress":
        if time.monotonic() > deadline or batch.status in ("failed", "completed"):
            raise RuntimeError(f"batch {batch.id} is {batch.status}, expected in_progress")
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    return batch.id


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="client loops = connections (default 32)")
    parser.add_argument(
        "--client", choices=["httpx", "raw", "both"], default="both", help="load generator (default both)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args()
    kinds = ["httpx", "raw"] if args.client == "both" else [args.client]

    raise_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="batchway-bench-read-"))
    print(f"machine: {machine()}\nwork dir: {work}", flush=True)
    try:
        # 100 lines at 0.2 lines/s upstream: the batch stays in_progress for the whole run.
        with running_stack(work / "stack", lines_per_second=0.2) as stack:
            client = stack.client()
            batch_id = upload_small_batch(client)
            path = f"/v1/batches/{batch_id}"
            print(f"GET {path}", flush=True)
            rows = [
                measure(kind, stack.api_port, stack.pid("api"), stack.api_key, path, args) for kind in kinds
            ]
            stack.check_alive()
            final = client.batches.retrieve(batch_id)

        print(
            "\n| client | connections | seconds | requests | errors | req/s | p50 ms | p99 ms | max ms "
            "| API CPU | bench CPU | machine busy | API RSS MiB start -> peak |"
        )
        print("|---|" + "---:|" * 12)
        for row in rows:
            print("| " + " | ".join(row.cells(args)) + " |")
        for row in rows:
            if row.load.errors:
                print(f"{row.client} errors: {row.load.errors}")
        print(
            "\nAPI and bench CPU: share of one core; machine busy: share of all "
            f"{os.cpu_count()} cores, every process on the machine (warm-up included)."
        )
        print(f"batch status after the run: {final.status} ({final.request_counts})")
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
