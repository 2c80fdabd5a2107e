"""Read-path benchmark: batchway's cheap GETs against a bare FastAPI route serving the same bytes.

Starts a stack (the API is `batchway api`, one uvicorn worker in its own process) on SQLite, or on a
throwaway PostgreSQL database with `--database-url` (created, then dropped). It creates 20 one-line
batches (waited on until they are done), then one 100-line batch that it keeps `in_progress` (slow
simulated upstream, so the worker keeps polling and writing its row), and captures batchway's answers to

- `GET /v1/batches/{id}` (the in-progress batch),
- `GET /v1/batches?limit=20`,
- `GET /v1/files/{id}` (that batch's input file).

It then starts the *bare* server: this script in its own process, a FastAPI app served by uvicorn with
the options `batchway api` uses, one route per path above returning the captured bytes from memory (no
auth, no database, no middleware). For each path it runs `--rounds` rounds, each measuring the bare
server and batchway back to back (alternating which goes first, so both share the machine's noise):
`--concurrency` request loops for `--warmup` + `--seconds` (only the latter counted). It prints req/s,
p50 and p99 for both, the ratios batchway/bare, and whether the goal is met (req/s >= 0.6 x bare,
p99 <= 1.5 x bare). Last, it cancels the batch and checks that the very next GET and list show it.

Load generators (`--client`):
- `raw` (default): one keep-alive socket per loop speaking minimal HTTP/1.1, so the load generator
  costs little CPU and the figure is about the server (the bench shares the machine with it);
- `httpx`: one httpx.AsyncClient capped at `--concurrency` connections (what a Python caller sees).

    .venv/bin/python bench/read_path.py                  # SQLite, 32 connections, 2 rounds of 10 s
    .venv/bin/python bench/read_path.py --database-url postgresql://postgres@127.0.0.1:5432/bw_read
    .venv/bin/python bench/read_path.py --seconds 20 --rounds 3 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import orjson
import psutil
from stack import (
    MIB,
    RssSampler,
    _stop,
    _wait_listening,
    bench_run,
    machine_busy_seconds,
    running_stack,
    throwaway_database,
)

from batchway.servers import free_port
from batchway.settings import Settings

BATCH_LINES = 100
LIST_BATCHES = 20
TERMINAL = {"completed", "failed", "expired", "cancelled"}
GOAL_RATE, GOAL_P99 = 0.6, 1.5
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


def batch_lines(lines: int) -> bytes:
    line = {
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    return b"".join(orjson.dumps({"custom_id": f"r{i}", **line}) + b"\n" for i in range(lines))


def create_batch(client: openai.OpenAI, lines: int) -> openai.types.Batch:
    uploaded = client.files.create(file=("input.jsonl", batch_lines(lines)), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def wait_for(client: openai.OpenAI, batch_ids: list[str], wanted: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    pending = list(batch_ids)
    while pending:
        batch = client.batches.retrieve(pending[0])
        if batch.status in wanted:
            pending.pop(0)
            continue
        if time.monotonic() > deadline or batch.status in TERMINAL:
            raise RuntimeError(f"batch {batch.id} is {batch.status}, expected one of {sorted(wanted)}")
        time.sleep(0.2)


def set_up_batches(client: openai.OpenAI) -> tuple[str, str]:
    """LIST_BATCHES one-line batches, waited on until done, then one BATCH_LINES-line batch, waited on
    until `in_progress` (it stays so: the upstream is slow). Returns its id and its input file's id."""
    extra = [create_batch(client, 1).id for _ in range(LIST_BATCHES)]
    wait_for(client, extra, TERMINAL, 180)
    batch = create_batch(client, BATCH_LINES)
    wait_for(client, [batch.id], {"in_progress"}, 60)
    return batch.id, batch.input_file_id


def fetch(port: int, api_key: str, path: str) -> bytes:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {api_key}"})
    response.raise_for_status()
    return response.content


# -- the bare server -------------------------------------------------------------------------------------


def serve_bare(port: int, bodies_file: Path, grace: int) -> None:
    """The reference: FastAPI + uvicorn as `batchway api` runs them (`batchway/cli.py`: `uvicorn.run`
    with the default options, host 127.0.0.1, the same graceful-shutdown timeout), one route per measured
    path returning batchway's captured bytes from memory. No auth, no database, no middleware."""
    import uvicorn
    from fastapi import FastAPI
    from starlette.responses import Response

    bodies = {name: body.encode() for name, body in orjson.loads(bodies_file.read_bytes()).items()}
    app = FastAPI(title="bare")

    @app.get("/v1/batches/{batch_id}")
    async def retrieve_batch(batch_id: str) -> Response:
        return Response(bodies["batch"], media_type="application/json")

    @app.get("/v1/batches")
    async def list_batches() -> Response:
        return Response(bodies["batches"], media_type="application/json")

    @app.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: str) -> Response:
        return Response(bodies["file"], media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, timeout_graceful_shutdown=grace)


@contextlib.contextmanager
def bare_server(work: Path, bodies: dict[str, bytes]) -> Iterator[tuple[int, int]]:
    """Run `serve_bare` in its own process (stdout, the access log included, to a file, as the API's);
    yields its port and pid."""
    bodies_file = work / "bare-bodies.json"
    bodies_file.write_bytes(orjson.dumps({name: body.decode() for name, body in bodies.items()}))
    port, log = free_port(), work / "bare.log"
    grace = int(Settings.model_fields["shutdown_grace_seconds"].default)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(port), str(bodies_file), str(grace)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_listening(proc, "bare server", port, log, 30)
        yield port, proc.pid
    finally:
        _stop(proc, own_group=True)


# -- figures ---------------------------------------------------------------------------------------------


@dataclass
class Pooled:
    """One (path, server) over every round."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0

    def add(self, row: Row, seconds: float) -> None:
        self.latencies.extend(row.load.latencies)
        self.seconds += seconds
        self.errors += sum(row.load.errors.values())

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000


def print_rounds(name: str, rows: list[tuple[int, str, Row]], args: argparse.Namespace) -> None:
    print(
        f"\n{name}\n\n| round | server | connections | seconds | requests | errors | req/s | p50 ms | p99 ms "
        "| max ms | server CPU | bench CPU | machine busy | server RSS MiB start -> peak |"
    )
    print("|---:|---|" + "---:|" * 12)
    for round_no, server, row in rows:
        print(f"| {round_no} | {server} | " + " | ".join(row.cells(args)[1:]) + " |")
    for round_no, server, row in rows:
        if row.load.errors:
            print(f"round {round_no} {server} errors: {row.load.errors}")


def print_summary(pooled: dict[str, dict[str, Pooled]], args: argparse.Namespace) -> bool:
    print(
        f"\nSummary ({args.rounds} rounds x {args.seconds:g} s per server and path, pooled; goal: req/s "
        f"ratio >= {GOAL_RATE}, p99 ratio <= {GOAL_P99})\n\n"
        "| path | bare req/s | batchway req/s | req/s ratio | bare p50 ms | batchway p50 ms "
        "| bare p99 ms | batchway p99 ms | p99 ratio | goal |"
    )
    print("|---|" + "---:|" * 8 + "---|")
    all_met = True
    for name, by_server in pooled.items():
        bare, ours = by_server["bare"], by_server["batchway"]
        rate_ratio, p99_ratio = ours.rate / bare.rate, ours.p(0.99) / bare.p(0.99)
        met = rate_ratio >= GOAL_RATE and p99_ratio <= GOAL_P99 and not ours.errors
        all_met &= met
        print(
            f"| {name} | {bare.rate:,.0f} | {ours.rate:,.0f} | {rate_ratio:.2f} | {bare.p(0.5):.1f} "
            f"| {ours.p(0.5):.1f} | {bare.p(0.99):.1f} | {ours.p(0.99):.1f} | {p99_ratio:.2f} "
            f"| {'met' if met else 'NOT met'} |"
        )
    return all_met


def check_fresh(client: openai.OpenAI, batch_id: str) -> str:
    """Cancel the batch; the very next GET and list must show the new status (no stale read)."""
    before = client.batches.retrieve(batch_id).status
    client.batches.cancel(batch_id)
    seen = client.batches.retrieve(batch_id).status
    listed = next(b.status for b in client.batches.list(limit=20).data if b.id == batch_id)
    if seen not in ("cancelling", "cancelled") or listed not in ("cancelling", "cancelled"):
        raise RuntimeError(f"stale read: after cancel, GET says {seen} and the list says {listed}")
    return f"{before} -> cancel -> next GET: {seen}, next list: {listed}"


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-bare":
        serve_bare(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per segment (default 10)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="bare/batchway pairs per path (default 2)")
    parser.add_argument("--concurrency", type=int, default=32, help="client loops = connections (default 32)")
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="load generator (default raw)"
    )
    parser.add_argument(
        "--database-url", help="postgresql://postgres@127.0.0.1:5432/<new db>: created, then dropped"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args()

    with bench_run("read", args.keep) as work:
        database = (
            throwaway_database(args.database_url) if args.database_url else contextlib.nullcontext(None)
        )
        # 100 lines at 0.2 lines/s upstream: the batch stays in_progress for the whole run.
        with (
            database as database_url,
            running_stack(work / "stack", lines_per_second=0.2, database_url=database_url) as stack,
        ):
            print(f"database: {'postgresql' if database_url else 'sqlite'}", flush=True)
            client = stack.client()
            batch_id, file_id = set_up_batches(client)
            paths = {
                "GET /v1/batches/{id}": f"/v1/batches/{batch_id}",
                f"GET /v1/batches?limit={LIST_BATCHES}": f"/v1/batches?limit={LIST_BATCHES}",
                "GET /v1/files/{id}": f"/v1/files/{file_id}",
            }
            bodies = {
                key: fetch(stack.api_port, stack.api_key, path)
                for key, path in zip(("batch", "batches", "file"), paths.values(), strict=True)
            }
            listed = len(orjson.loads(bodies["batches"])["data"])
            if listed != LIST_BATCHES:
                raise RuntimeError(f"the list has {listed} batches, expected {LIST_BATCHES}")
            print(", ".join(f"{k}: {len(v)} bytes" for k, v in bodies.items()), flush=True)
            pooled: dict[str, dict[str, Pooled]] = {}
            with bare_server(work, bodies) as (bare_port, bare_pid):
                servers = {"bare": (bare_port, bare_pid), "batchway": (stack.api_port, stack.pid("api"))}
                for name, path in paths.items():
                    print(f"\n{name}: {path}", flush=True)
                    pooled[name] = {server: Pooled() for server in servers}
                    rows = []
                    for round_no in range(1, args.rounds + 1):
                        order = ["bare", "batchway"] if round_no % 2 else ["batchway", "bare"]
                        for server in order:
                            port, pid = servers[server]
                            row = measure(f"{server} round {round_no}", port, pid, stack.api_key, path, args)
                            rows.append((round_no, server, row))
                            pooled[name][server].add(row, args.seconds)
                    print_rounds(name, rows, args)
            stack.check_alive()
            freshness = check_fresh(client, batch_id)

        all_met = print_summary(pooled, args)
        print(
            "\nserver and bench CPU: share of one core; machine busy: share of all "
            f"{os.cpu_count()} cores, every process on the machine (warm-up included)."
        )
        print(f"freshness: {freshness}")
        print(f"goal {'met on every path' if all_met else 'NOT met on at least one path'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
