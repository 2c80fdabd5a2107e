"""Fan-out benchmark: batchway's fan-out against a simulated OpenAI-compatible chat API, side by side with
the client-side recipes, one contender after another on the same machine.

One stack (separate Temporal, `batchway worker` and `batchway api` processes, `bench/stack.py`); every
contender of every case gets a fresh `batchway simulate` process of its own (its own token bucket,
starting full, and its own counters; batchway also gets a fresh limiter, since the provider points at a
new upstream with a new key). The chat API's knobs are set through `POST /_simulator/config`.

Rate-limited cases (`--rpm`/`--lines`/`--latency`): a bucket of `rpm` requests starting full and
refilling at rpm/60 per second, answers after `latency`:
- `batchway`: a fan-out provider with no limits configured; time from `batches.create` (after the
  upload) to the first poll (every 50 ms) that sees the batch `completed` (its output file is then
  downloadable; the download, not timed, checks every line);
- `sdk sem N`: the recipe providers publish: the official `openai` SDK (`AsyncOpenAI(max_retries=0)`),
  `asyncio.Semaphore(N)`, and on a 429 a sleep of `retry-after-ms` (else `retry-after`) inside the
  semaphore, then the same call again.
"ideal" is the time the upstream's bucket needs to admit every line, (lines - rpm) / (rpm / 60), plus
one latency (the last answer). When the bucket holds every line it is the time a window of 256 calls
in flight (the fan-out's ceiling) needs: ceil(lines / 256) x latency.

Unlimited cases (`--unlimited-lines`): no limit, no latency. batchway end to end (upload -> output
file) against a bare `AsyncOpenAI` client with a semaphore of 100; CPU of batchway's processes per
1,000 lines.

429s are counted by each contender's simulator (every call it answered 429); lost lines are lines
without a 200 answer in the output (batchway) or at the end (recipes).

    .venv/bin/python bench/fanout.py                        # every case of the issue
    .venv/bin/python bench/fanout.py --only rate-limited    # or: --only unlimited
    .venv/bin/python bench/fanout.py --rpm 1200 --lines 2000 --latency 0.2 --only rate-limited
    .venv/bin/python bench/fanout.py --only unlimited --unlimited-lines 5000 --py-spy /tmp/w.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import psutil
from sqlmodel import Session, select
from stack import (
    BIN,
    Stack,
    _stop,
    _wait_listening,
    bench_run,
    machine_busy_seconds,
    running_stack,
    tree_cpu,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from batchway import tenancy
from batchway.secret_box import load_box
from batchway.servers import free_port
from batchway.settings import Settings
from batchway.storage.db import make_engine
from batchway.storage.models import Org

MODEL = "gpt-4o-mini"
PROVIDER = "fanout"
CEILING = 256  # the fan-out limiter's discovery ceiling (LimiterConfig.ceiling_concurrency)
POLL_SECONDS = 0.05
STACK_PROCESSES = ("worker", "api", "temporal")


# -- helpers ---------------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of named processes (and of the whole machine) between `start` and `stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.used: dict[str, float] = {}
        self._first: dict[str, float] = {}

    def start(self) -> None:
        self._first = {name: tree_cpu(p) for name, p in self.processes.items()}
        self._first["bench"] = _own_cpu()
        self._first["machine"] = machine_busy_seconds()

    def stop(self) -> None:
        self.used = {name: tree_cpu(p) - self._first[name] for name, p in self.processes.items()}
        self.used["bench"] = _own_cpu() - self._first["bench"]
        self.used["machine"] = machine_busy_seconds() - self._first["machine"]


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def chat_lines(count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{tag}-{i:06d}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "max_tokens": 32,
                "messages": [{"role": "user", "content": f"Say hello to number {i} of {tag}."}],
            },
        }
        for i in range(count)
    ]


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the simulated chat API ------------------------------------------------------------------------------


@dataclass
class ChatSimulator:
    url: str  # http://127.0.0.1:{port}
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def configure(self, **knobs: Any) -> None:
        response = httpx.post(f"{self.url}/_simulator/config", json=knobs, timeout=10)
        response.raise_for_status()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_simulator/chat/stats", timeout=10).json()


@contextlib.contextmanager
def chat_simulator(root: Path, name: str, **knobs: Any) -> Iterator[ChatSimulator]:
    """A `batchway simulate` process of its own (any API key; buckets per key), configured by `knobs`."""
    port = free_port()
    (root / "logs").mkdir(exist_ok=True)
    log = root / "logs" / f"sim-{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHWAY_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "batchway"), "simulate", "--port", str(port), "--data-dir", str(root / f"sim-{name}")],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_listening(proc, f"simulator {name}", port, log, 30)
        sim = ChatSimulator(url=f"http://127.0.0.1:{port}", proc=proc)
        sim.configure(**knobs)
        yield sim
    finally:
        _stop(proc, own_group=True)


# -- results ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    contender: str
    lines: int
    seconds: float  # batchway: create -> completed; recipes: first call -> last answer
    calls: int
    rate_limited: int
    ok_lines: int
    upload_seconds: float = 0.0  # batchway only
    first_call_seconds: float | None = None  # batchway: create -> the upstream's first call
    timeline: str = ""  # batchway: the workflow's activities, in seconds after create
    cpu: dict[str, float] = field(default_factory=dict)
    max_in_flight: int = 0
    load: str = ""

    @property
    def lost(self) -> int:
        return self.lines - self.ok_lines

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.calls if self.calls else 0.0

    @property
    def end_to_end(self) -> float:
        return self.upload_seconds + self.seconds


def upstream_counts(sim: ChatSimulator) -> tuple[int, int, int]:
    """(calls, 429s, max in flight) as the simulator counted them."""
    stats = sim.stats()
    return stats["calls"]["total"], sum(stats["rate_limited"].values()), stats["max_in_flight"]


# -- batchway --------------------------------------------------------------------------------------------


def point_provider(stack: Stack, base_url: str, api_key: str) -> None:
    """The dev org's provider `fanout` now fans out to `base_url` with `api_key` (no limits)."""
    settings = Settings(_env_file=None, data_dir=stack.data_dir, database_url=stack.database_url)  # type: ignore[call-arg]
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            org = session.exec(select(Org).where(Org.name == "default")).one()
            tenancy.set_provider(
                session,
                org,
                PROVIDER,
                kind="fanout",
                api_key=api_key,
                base_url=base_url,
                box=load_box(settings),
            )
    finally:
        engine.dispose()


def run_batchway(stack: Stack, sim: ChatSimulator, lines: list[dict[str, Any]], timeout: float) -> Result:
    point_provider(stack, sim.base_url, f"bench-{uuid.uuid4().hex[:12]}")  # a fresh limiter too
    client = stack.client(timeout=600)
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    pids = {name: stack.pid(name) for name in STACK_PROCESSES} | {"simulator": sim.proc.pid}
    cpu = CpuMeter(pids)
    cpu.start()
    started = time.perf_counter()
    uploaded = client.files.create(file=("input.jsonl", data), purpose="batch")
    created_at = time.perf_counter()
    created_wall = time.time()
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"batchway-provider": PROVIDER},
    )
    first_call: float | None = None
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        if time.perf_counter() - created_at > timeout:
            raise TimeoutError(f"batch {batch.id} still {batch.status} after {timeout}s")
        stack.check_alive()
        time.sleep(POLL_SECONDS)
        batch = client.batches.retrieve(batch.id)
        if first_call is None and sim.stats()["calls"]["total"]:
            first_call = time.perf_counter() - created_at
    done_at = time.perf_counter()
    cpu.stop()
    if batch.status != "completed":
        raise RuntimeError(f"batch {batch.id} ended {batch.status}: {batch.errors}")
    ok = 0
    if batch.output_file_id:
        seen = set()
        for raw in client.files.content(batch.output_file_id).content.splitlines():
            line = orjson.loads(raw)
            if line["response"] and line["response"]["status_code"] == 200:
                seen.add(line["custom_id"])
        ok = len(seen & {line["custom_id"] for line in lines})
    calls, limited, max_in_flight = upstream_counts(sim)
    timeline = asyncio.run(activity_timeline(stack.temporal_address, batch.id, created_wall))
    return Result(
        contender="batchway",
        timeline=timeline,
        lines=len(lines),
        seconds=done_at - created_at,
        calls=calls,
        rate_limited=limited,
        ok_lines=ok,
        upload_seconds=created_at - started,
        first_call_seconds=first_call,
        cpu=cpu.used,
        max_in_flight=max_in_flight,
    )


async def activity_timeline(address: str, batch_id: str, created_at: float) -> str:
    """The batch workflow's activities as `name start-end` in seconds after `batches.create` (chunks
    folded into one span), e.g. `open_batch 0.08-0.15, plan_chunks 0.19-0.23, run_chunk x8 0.27-41.9`."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(batch_id).fetch_history()
    names: dict[int, str] = {}
    spans: dict[str, list[float]] = {}
    for event in history.events:
        at = event.event_time.ToMicroseconds() / 1e6 - created_at
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            spans.setdefault(names[event.event_id], [math.inf, -math.inf, 0])[2] += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            span = spans[names[event.activity_task_started_event_attributes.scheduled_event_id]]
            span[0] = min(span[0], at)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            span = spans[names[event.activity_task_completed_event_attributes.scheduled_event_id]]
            span[1] = max(span[1], at)
    return ", ".join(
        f"{name}{f' x{count}' if count > 1 else ''} {start:.2f}-{end:.2f}"
        for name, (start, end, count) in spans.items()
    )


# -- the client-side recipes -----------------------------------------------------------------------------


def retry_after(response: httpx.Response) -> float:
    """What the SDKs read: `retry-after-ms`, else `retry-after` in seconds (1 s if neither)."""
    with contextlib.suppress(TypeError, ValueError):
        return float(response.headers["retry-after-ms"]) / 1000
    with contextlib.suppress(TypeError, ValueError, KeyError):
        return float(response.headers["retry-after"])
    return 1.0


async def recipe(base_url: str, lines: list[dict[str, Any]], concurrency: int) -> tuple[float, int]:
    """The published recipe: AsyncOpenAI, a semaphore, sleep retry-after on 429 and try again.
    Returns (seconds, lines answered 200)."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key=f"bench-{uuid.uuid4().hex[:12]}", max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(body: dict[str, Any]) -> None:
        nonlocal ok
        async with semaphore:
            while True:
                try:
                    await client.chat.completions.create(**body)
                except openai.RateLimitError as exc:
                    await asyncio.sleep(retry_after(exc.response))
                    continue
                except openai.APIError:
                    return
                ok += 1
                return

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(line["body"]) for line in lines))
        return time.perf_counter() - started, ok
    finally:
        await client.close()


def run_recipe(sim: ChatSimulator, lines: list[dict[str, Any]], concurrency: int) -> Result:
    cpu = CpuMeter({"simulator": sim.proc.pid})
    cpu.start()
    seconds, ok = asyncio.run(recipe(sim.base_url, lines, concurrency))
    cpu.stop()
    calls, limited, max_in_flight = upstream_counts(sim)
    return Result(
        contender=f"sdk sem {concurrency}",
        lines=len(lines),
        seconds=seconds,
        calls=calls,
        rate_limited=limited,
        ok_lines=ok,
        cpu=cpu.used,
        max_in_flight=max_in_flight,
    )


# -- the cases -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateCase:
    rpm: int
    lines: int
    latency: float

    @property
    def bucket_bound(self) -> bool:
        return self.lines > self.rpm

    @property
    def ideal(self) -> float:
        if self.bucket_bound:
            return (self.lines - self.rpm) / (self.rpm / 60) + self.latency
        return math.ceil(self.lines / CEILING) * self.latency

    def describe(self) -> str:
        latency = f"{self.latency * 1000:.0f} ms latency"
        return f"{self.rpm:,}/min bucket (starts full), {latency}, {self.lines:,} lines"


def run_rate_case(
    stack: Stack, root: Path, case: RateCase, contenders: list[str], timeout: float, profile: str | None
) -> list[Result]:
    results = []
    knobs = {"chat_rpm": case.rpm, "chat_latency_seconds": case.latency}
    for contender in contenders:
        name = f"{case.rpm}-{case.lines}-{contender}-{uuid.uuid4().hex[:4]}"
        lines = chat_lines(case.lines, name)
        print(f"  {contender} ... (load {load()})", flush=True)
        at_start = load()
        with chat_simulator(root, name, **knobs) as sim:
            if contender == "batchway":
                with py_spy(stack.pid("worker"), profile and f"{profile}.{case.rpm}-{case.lines}"):
                    result = run_batchway(stack, sim, lines, timeout)
            else:
                result = run_recipe(sim, lines, int(contender.removeprefix("sem")))
        result.load = f"{at_start} -> {load()}"
        print_rate_row(case, result)
        results.append(result)
    return results


def run_unlimited_case(
    stack: Stack, root: Path, count: int, timeout: float, profile: str | None
) -> list[Result]:
    results = []
    for contender in ("batchway", "sem100"):
        name = f"unlimited-{count}-{contender}-{uuid.uuid4().hex[:4]}"
        lines = chat_lines(count, name)
        print(f"  {contender} ... (load {load()})", flush=True)
        at_start = load()
        with chat_simulator(root, name, chat_latency_seconds=0.0) as sim:
            if contender == "batchway":
                with py_spy(stack.pid("worker"), profile and f"{profile}.unlimited-{count}"):
                    result = run_batchway(stack, sim, lines, timeout)
            else:
                result = run_recipe(sim, lines, 100)
        result.load = f"{at_start} -> {load()}"
        print_unlimited_row(result)
        results.append(result)
    return results


def warm_up(stack: Stack, root: Path, timeout: float) -> None:
    """One small batch through the fan-out first, not measured: a fresh worker imports modules and
    builds caches (Temporal's workflow sandbox, SQLAlchemy statements) on its first batch, which a
    running deployment has long done."""
    with chat_simulator(root, "warm-up") as sim:
        result = run_batchway(stack, sim, chat_lines(100, "warm-up"), timeout)
    print(f"warm-up: 100 lines in {result.seconds:.2f} s (not measured)", flush=True)


@contextlib.contextmanager
def py_spy(pid: int, output: str | None) -> Iterator[None]:
    if not output:
        yield
        return
    spy = subprocess.Popen(
        [str(BIN / "py-spy"), "record", "--gil", "-p", str(pid), "-f", "raw", "-o", output, "-r", "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(30)


# -- printing --------------------------------------------------------------------------------------------


def print_rate_row(case: RateCase, r: Result) -> None:
    extra = ""
    if r.contender == "batchway":
        extra = (
            f", first call {r.first_call_seconds or 0:.2f} s after create, "
            f"worker CPU {r.cpu['worker']:.1f} s\n"
            f"      activities (s after create): {r.timeline}\n     "
        )
    print(
        f"    {r.contender:<10} {r.seconds:7.2f} s  {r.seconds / case.ideal:5.2f} x ideal  "
        f"{r.calls:6d} calls  {r.rate_limited:5d} 429s ({100 * r.share_429:4.1f}%)  lost {r.lost}  "
        f"max in flight {r.max_in_flight}{extra}  load {r.load}",
        flush=True,
    )


def print_unlimited_row(r: Result) -> None:
    if r.contender == "batchway":
        stack_cpu = sum(r.cpu[name] for name in STACK_PROCESSES)
        print(
            f"    batchway   upload {r.upload_seconds:.2f} s + create->completed {r.seconds:.2f} s = "
            f"{r.end_to_end:.2f} s, {r.lines / r.end_to_end:6.0f} lines/s; CPU per 1,000 lines: worker "
            f"{1000 * r.cpu['worker'] / r.lines:.2f} s, worker+api+temporal "
            f"{1000 * stack_cpu / r.lines:.2f} s, "
            f"simulator {1000 * r.cpu['simulator'] / r.lines:.2f} s; lost {r.lost}; load {r.load}",
            flush=True,
        )
    else:
        print(
            f"    {r.contender:<10} {r.seconds:.2f} s, {r.lines / r.seconds:6.0f} lines/s; CPU per 1,000 "
            f"lines: bench {1000 * r.cpu['bench'] / r.lines:.2f} s, simulator "
            f"{1000 * r.cpu['simulator'] / r.lines:.2f} s; lost {r.lost}; load {r.load}",
            flush=True,
        )


def rate_table(rows: list[tuple[RateCase, Result]]) -> None:
    print("\n| upstream | lines | contender | time s | × ideal | calls | 429s | 429 share | lost lines |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for case, r in rows:
        print(
            f"| {case.rpm:,}/min, {case.latency * 1000:.0f} ms (ideal {case.ideal:.1f} s) | {r.lines:,} "
            f"| {r.contender} | {r.seconds:.2f} | {r.seconds / case.ideal:.2f} | {r.calls:,} "
            f"| {r.rate_limited:,} | {100 * r.share_429:.1f}% | {r.lost} |"
        )


def unlimited_table(pairs: list[tuple[Result, Result]]) -> None:
    print(
        "\n| lines | batchway upload s | create → completed s | end to end s | batchway lines/s "
        "| sdk sem 100 s | sdk lines/s | ratio | worker CPU s / 1,000 lines | batchway CPU s / 1,000 lines "
        "| lost |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for bw, sdk in pairs:
        stack_cpu = sum(bw.cpu[name] for name in STACK_PROCESSES)
        ratio = (bw.lines / bw.end_to_end) / (sdk.lines / sdk.seconds)
        print(
            f"| {bw.lines:,} | {bw.upload_seconds:.2f} | {bw.seconds:.2f} | {bw.end_to_end:.2f} "
            f"| {bw.lines / bw.end_to_end:.0f} | {sdk.seconds:.2f} | {sdk.lines / sdk.seconds:.0f} "
            f"| {ratio:.2f} | {1000 * bw.cpu['worker'] / bw.lines:.2f} | {1000 * stack_cpu / bw.lines:.2f} "
            f"| {bw.lost} / {sdk.lost} |"
        )


# -- main ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("rate-limited", "unlimited"), help="run only these cases")
    parser.add_argument("--rpm", type=int, action="append", help="rate-limited case (with --lines)")
    parser.add_argument("--lines", type=int, action="append", help="lines of each --rpm case")
    parser.add_argument("--latency", type=float, default=0.2, help="rate-limited answers' latency (0.2 s)")
    parser.add_argument(
        "--contenders", default="batchway,sem5,sem50", help="rate-limited contenders, in order"
    )
    parser.add_argument(
        "--unlimited-lines", type=int, action="append", help="unlimited cases (default 5000 and 20000)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="run every case this many times")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a batch may take")
    parser.add_argument(
        "--py-spy", help="record the worker (py-spy raw, one file per batchway run: PATH.<case>)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    args = parser.parse_args()
    if (args.rpm is None) != (args.lines is None) or len(args.rpm or []) != len(args.lines or []):
        parser.error("give --rpm and --lines together, once per case")
    cases = [
        RateCase(rpm, lines, args.latency)
        for rpm, lines in (
            zip(args.rpm, args.lines, strict=True) if args.rpm else ((1200, 2000), (6000, 3000))
        )
    ]
    unlimited = args.unlimited_lines or [5000, 20000]
    contenders = args.contenders.split(",")

    with bench_run("fanout", args.keep) as work:
        rate_rows: list[tuple[RateCase, Result]] = []
        pairs: list[tuple[Result, Result]] = []
        with running_stack(work / "stack") as stack:
            warm_up(stack, work, args.timeout)
            for attempt in range(args.repeat):
                if args.repeat > 1:
                    print(f"\n== run {attempt + 1} of {args.repeat}", flush=True)
                if args.only != "unlimited":
                    for case in cases:
                        print(f"\n{case.describe()}: ideal {case.ideal:.2f} s", flush=True)
                        rate_rows += [
                            (case, r)
                            for r in run_rate_case(stack, work, case, contenders, args.timeout, args.py_spy)
                        ]
                if args.only != "rate-limited":
                    for count in unlimited:
                        print(f"\nunlimited, no latency, {count:,} lines", flush=True)
                        bw, sdk = run_unlimited_case(stack, work, count, args.timeout, args.py_spy)
                        pairs.append((bw, sdk))
        if rate_rows:
            rate_table(rate_rows)
        if pairs:
            unlimited_table(pairs)
        print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
