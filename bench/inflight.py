"""In-flight benchmark: many small batches at once on ONE worker process, for the worker's CPU per batch.

Starts a fresh stack (separate Temporal, simulator, worker and API processes) with the code's own
production poll intervals (no `BATCHWAY_POLL_*` is set) and an upstream that finishes a 10-line batch at
once, so what a batch waits on is batchway (its polling and its worker's queues), never the upstream.
`--batches` batches are then created with
the openai SDK from `--concurrency` client tasks (each uploads its own file, then `batches.create`), and
the bench pages through `GET /v1/batches?limit=100` until every batch is terminal.

Measured from the first create to the sweep that sees the last batch terminal: the worker's CPU seconds
(user + system, children included) per batch and as average cores, the other processes' CPU, peak RSS,
create and list latency, created -> in_progress and upstream done -> completed delays, upstream batches
and calls per batch (from the simulator), and, from a sample of workflow histories, events per run and
workflow/activity task schedule-to-start latency. Exits 1 if any batch did not end `completed`.

    .venv/bin/python bench/inflight.py                       # 300 batches of 10 lines, SQLite
    .venv/bin/python bench/inflight.py --batches 1000
    .venv/bin/python bench/inflight.py --database-url postgresql://postgres@127.0.0.1:5432/bw_inflight
    .venv/bin/python bench/inflight.py --py-spy /tmp/worker.txt   # also profile the worker for 30 s

To measure another checkout (e.g. a `git worktree`), copy `bench/` into it and run from there with
`PYTHONPATH=<that tree>`: the bench and the processes it spawns then import that tree's `batchway`, which
the bench prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import psutil
from stack import (
    BIN,
    MIB,
    RssSampler,
    Stack,
    bench_run,
    machine_busy_seconds,
    running_stack,
    throwaway_database,
    tree_cpu,
    worker_names,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

import batchway
from batchway.settings import Settings

MODEL = "gpt-4o-mini"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
CPU_PROCESSES = ("worker", "api", "temporal", "simulator")
UPSTREAM_TAG = "batchway_batch_id"  # the upstream batch's metadata key naming its batchway batch
ACCESS_LINE = re.compile(r'"(GET|POST|DELETE|PUT|PATCH) (\S+) HTTP/[\d.]+" (\d{3})')
# py-spy names files relative to sys.path: "(batchway/pipeline/remote.py:12)", "(worker.py:40)".
LINE_NUMBER = re.compile(r":\d+\)$")
OWN_FRAME = re.compile(r"\((?:batchway|activities|workflows|temporalio)/|\(worker\.py[:)]")


# -- small helpers ---------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def own_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of the process alone (the bench: its children are the stack)."""
    times = proc.cpu_times()
    return times.user + times.system


def batch_input(lines: int) -> bytes:
    """A small chat-completions batch input; every batch uploads its own copy."""
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"request-{i:04d}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "max_tokens": 32,
                    "messages": [{"role": "user", "content": f"Say hello to number {i}."}],
                },
            }
        )
        + b"\n"
        for i in range(lines)
    )


def code_under_test(stack: Stack) -> str:
    """Where the worker's environment resolves `batchway` and `worker` from (PYTHONPATH can point the
    stack at another checkout than the venv's editable install), beside the bench's own `batchway`."""
    worker = psutil.Process(stack.pid("worker"))
    probe = subprocess.run(
        [sys.executable, "-c", "import batchway, worker; print(batchway.__file__, worker.__file__)"],
        env=worker.environ(),
        cwd=stack.root,
        capture_output=True,
        text=True,
    )
    resolved = probe.stdout.strip() or f"probe failed: {probe.stderr.strip()[-200:]}"
    return f"bench imports {batchway.__file__}; the worker's environment imports {resolved}"


def poll_settings(stack: Stack) -> str:
    """The poll intervals the worker runs with: none set in its environment means the code's defaults."""
    env = psutil.Process(stack.pid("worker")).environ()
    overrides = {k: v for k, v in env.items() if k.startswith("BATCHWAY_POLL_")}
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    if overrides:
        return f"OVERRIDDEN in the worker's environment: {overrides}"
    return (
        f"{defaults.poll_interval_min_seconds:g} s min / {defaults.poll_interval_max_seconds:g} s max "
        "(the code's defaults; no BATCHWAY_POLL_* in the worker's environment)"
    )


# -- the load --------------------------------------------------------------------------------------------


@dataclass
class Created:
    batch_id: str
    upload_s: float
    create_s: float
    created_wall: float  # time.time() when `batches.create` returned


@dataclass
class Watch:
    """What the `GET /v1/batches` sweeps saw: when each batch was first seen in each status."""

    first_seen: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    last: dict[str, Any] = field(default_factory=dict)
    list_s_creating: list[float] = field(default_factory=list)
    list_s_waiting: list[float] = field(default_factory=list)
    sweeps: int = 0


async def create_batches(
    client: openai.AsyncOpenAI, count: int, concurrency: int, content: bytes
) -> list[Created]:
    """`count` uploads + creates from `concurrency` client tasks; any error aborts the bench."""
    created: list[Created] = []
    indices = iter(range(count))

    async def client_task() -> None:
        for i in indices:
            started = time.perf_counter()
            uploaded = await client.files.create(
                file=(f"inflight-{i:05d}.jsonl", content, "application/jsonl"), purpose="batch"
            )
            uploaded_at = time.perf_counter()
            batch = await client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            done = time.perf_counter()
            created.append(Created(batch.id, uploaded_at - started, done - uploaded_at, time.time()))

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(client_task())
    return created


async def watch_batches(
    client: openai.AsyncOpenAI,
    watch: Watch,
    creating: asyncio.Event,
    expected: int,
    interval: float,
    deadline: float,
    stack: Stack,
) -> None:
    """Sweep every page of `GET /v1/batches?limit=100` until all `expected` batches are terminal (one
    sweep costs N/100 requests, far fewer than N single GETs)."""
    while True:
        after: str | None = None
        while True:
            in_create_phase = creating.is_set()
            started = time.perf_counter()
            page = await client.batches.list(limit=100, **({"after": after} if after else {}))
            elapsed = time.perf_counter() - started
            (watch.list_s_creating if in_create_phase else watch.list_s_waiting).append(elapsed)
            now = time.time()
            for batch in page.data:
                watch.first_seen[batch.id].setdefault(batch.status, now)
                watch.last[batch.id] = batch
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
        watch.sweeps += 1
        if (
            not creating.is_set()
            and len(watch.last) >= expected
            and all(b.status in TERMINAL for b in watch.last.values())
        ):
            return
        if time.monotonic() > deadline:
            pending = Counter(b.status for b in watch.last.values() if b.status not in TERMINAL)
            raise TimeoutError(f"batches still not terminal at the deadline: {dict(pending)}")
        stack.check_alive()
        await asyncio.sleep(interval)


async def run_load(stack: Stack, args: argparse.Namespace) -> tuple[list[Created], Watch, float]:
    """Create the batches while watching them; returns the creates, the watch and the create wall time."""
    client = openai.AsyncOpenAI(base_url=stack.api_url, api_key=stack.api_key, max_retries=0, timeout=120)
    watch = Watch()
    creating = asyncio.Event()
    creating.set()
    deadline = time.monotonic() + args.timeout
    watcher = asyncio.create_task(
        watch_batches(client, watch, creating, args.batches, args.watch_interval, deadline, stack)
    )
    try:
        started = time.perf_counter()
        created = await create_batches(client, args.batches, args.concurrency, batch_input(args.lines))
        create_wall = time.perf_counter() - started
        creating.clear()
        await watcher
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        await client.close()
    return created, watch, create_wall


# -- what the simulator and Temporal recorded ------------------------------------------------------------


def upstream_figures(stack: Stack, batch_ids: list[str]) -> dict[str, Any]:
    """Upstream batches per batchway batch, their completion times, and the calls the upstream received
    (its own counter where the simulator has one, and its access log, which every version writes)."""
    with httpx.Client(timeout=60) as http:
        upstream = http.get(f"{stack.simulator_url}/_simulator/batches").json()["data"]
        calls_response = http.get(f"{stack.simulator_url}/_simulator/calls")
    per_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in upstream:
        per_batch[(item.get("metadata") or {}).get(UPSTREAM_TAG, "?")].append(item)
    counts = Counter(len(per_batch.get(batch_id, [])) for batch_id in batch_ids)
    completed_at = {
        batch_id: max(u["completed_at"] for u in items if u.get("completed_at"))
        for batch_id, items in per_batch.items()
        if any(u.get("completed_at") for u in items)
    }
    counter = None
    if calls_response.status_code == 200:
        counter = {
            f"{api} {route}": n
            for api, routes in calls_response.json().items()
            for route, n in routes.items()
            if n
        }
    access: Counter[str] = Counter()
    for line in stack.log("simulator").read_text(errors="replace").splitlines():
        match = ACCESS_LINE.search(line)
        if match and match[2].startswith("/v1/"):
            path = re.sub(r"^/v1/(files|batches)/[^/?]+", r"/v1/\1/{id}", match[2].split("?", 1)[0])
            access[f"{match[1]} {path}"] += 1
    return {
        "upstream_batches": len(upstream),
        "upstream_per_batch": dict(sorted(counts.items())),
        "untagged_upstream": len(per_batch.get("?", [])),
        "upstream_completed_at": completed_at,
        "calls_counter": counter,
        "calls_access_log": dict(access.most_common()),
    }


async def history_figures(address: str, batch_ids: list[str]) -> dict[str, Any]:
    """Events per run and task schedule-to-start latency, from the histories of `batch_ids`."""
    client = await Client.connect(address)
    limit = asyncio.Semaphore(8)
    events: list[int] = []
    per_run: dict[str, list[int]] = defaultdict(list)
    wft_delay: list[float] = []
    activity_delay: list[float] = []
    kinds = {
        "workflow tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        "activities": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        "timers": EventType.EVENT_TYPE_TIMER_STARTED,
    }

    async def one(batch_id: str) -> None:
        async with limit:
            history = await client.get_workflow_handle(batch_id).fetch_history()
        scheduled: dict[int, float] = {}
        events.append(len(history.events))
        for name, kind in kinds.items():
            per_run[name].append(sum(1 for e in history.events if e.event_type == kind))
        for event in history.events:
            at = event.event_time.ToMicroseconds() / 1e6
            if event.event_type in (
                EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            ):
                scheduled[event.event_id] = at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                wft_delay.append(
                    at - scheduled[event.workflow_task_started_event_attributes.scheduled_event_id]
                )
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                activity_delay.append(
                    at - scheduled[event.activity_task_started_event_attributes.scheduled_event_id]
                )

    await asyncio.gather(*(one(batch_id) for batch_id in batch_ids))
    return {
        "histories": len(events),
        "events_mean": sum(events) / len(events),
        "events_max": max(events),
        "per_run_mean": {name: sum(v) / len(v) for name, v in per_run.items()},
        "wft_schedule_to_start_s": wft_delay,
        "activity_schedule_to_start_s": activity_delay,
    }


# -- profiling -------------------------------------------------------------------------------------------


async def profile_worker(pid: int, out: Path, delay: float, seconds: float) -> None:
    """py-spy the worker for `seconds`, `delay` seconds into the load. `--gil` keeps only the samples of
    the thread holding the GIL: the worker's Python CPU (idle thread-pool threads would otherwise count)."""
    await asyncio.sleep(delay)
    command = [str(BIN / "py-spy"), "record", "--gil", "-p", str(pid), "-f", "raw", "-o", str(out)]
    proc = await asyncio.create_subprocess_exec(
        *command,
        "-d",
        str(int(seconds)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


def profile_summary(path: Path, top: int = 15) -> str:
    """Top functions of a raw (collapsed) py-spy profile: self time of any code; self time charged to the
    nearest batchway / activities / workflows / temporalio function; cumulative time of those functions."""
    anywhere: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n, frames = int(count), [LINE_NUMBER.sub(")", f) for f in stack.split(";")]  # per function
        total += n
        anywhere[frames[-1]] += n
        own = [f for f in frames if OWN_FRAME.search(f)]
        if own:
            charged[own[-1]] += n
        for frame in set(own):
            cumulative[frame] += n
    if not total:
        return f"no samples in {path}"
    lines = [f"py-spy --gil: {total} samples of the worker holding the GIL ({path})"]
    for title, counter in (
        ("self, any code", anywhere),
        ("self, charged to the nearest batchway/activities/workflows/temporalio frame", charged),
        ("cumulative, batchway/activities/workflows/temporalio frames", cumulative),
    ):
        lines += ["", f"| {title} % | frame |", "|---:|---|"]
        lines += [f"| {n / total:.1%} | `{frame}` |" for frame, n in counter.most_common(top)]
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], bool]:
    """One stack, one load; returns the figures and whether every batch completed."""
    database = throwaway_database(args.database_url) if args.database_url else contextlib.nullcontext(None)
    with (
        database as database_url,
        running_stack(
            work / "stack",
            lines_per_second=args.lines_per_second,
            poll_min_seconds=None,  # production polling: the point of this bench
            poll_max_seconds=None,
            database_url=database_url,
            settings_env=dict(item.split("=", 1) for item in args.env),
            workers=args.workers,
        ) as stack,
    ):
        print(f"imports: {code_under_test(stack)}", flush=True)
        print(f"poll intervals: {poll_settings(stack)}", flush=True)
        workers = worker_names(args.workers)
        others = [name for name in CPU_PROCESSES if name != "worker"]
        procs = {name: psutil.Process(stack.pid(name)) for name in [*workers, *others]}
        me = psutil.Process()

        def workers_cpu() -> float:
            return sum(tree_cpu(procs[name]) for name in workers)

        idle_before = workers_cpu()
        time.sleep(args.idle_seconds)
        idle_cores = (workers_cpu() - idle_before) / args.idle_seconds

        print(f"creating {args.batches} batches of {args.lines} lines ...", flush=True)
        sampled = ["api", *workers]
        with RssSampler({name: stack.pid(name) for name in sampled}, interval=0.2) as rss:
            cpu_before = {name: tree_cpu(p) for name, p in procs.items()}
            bench_before, busy_before = own_cpu(me), machine_busy_seconds()
            started = time.perf_counter()
            ended: dict[str, Any] = {}

            async def load() -> tuple[list[Created], Watch, float]:
                profiler = None
                if args.py_spy:
                    profiler = asyncio.create_task(
                        profile_worker(
                            stack.pid("worker"), args.py_spy, args.py_spy_delay, args.py_spy_seconds
                        )
                    )
                result = await run_load(stack, args)
                # The window ends here, even if the profiler still runs.
                ended.update(
                    at=time.perf_counter(),
                    cpu={name: tree_cpu(p) for name, p in procs.items()},
                    bench=own_cpu(me),
                    busy=machine_busy_seconds(),
                )
                if profiler:
                    await profiler
                return result

            created, watch, create_wall = asyncio.run(load())
            wall = ended["at"] - started
            cpu = {name: ended["cpu"][name] - cpu_before[name] for name in procs}
            cpu["workers"] = [cpu[name] for name in workers]  # type: ignore[assignment]
            cpu["worker"] = sum(cpu.pop(name) for name in workers)  # all of them, as one figure
            bench_cpu, busy = ended["bench"] - bench_before, ended["busy"] - busy_before
        peaks = {name: max(rss.peak[name], rss.high_water_mark(name) or 0) for name in sampled}
        print(f"all terminal after {wall:.1f} s; reading the simulator and Temporal ...", flush=True)

        ids = [c.batch_id for c in sorted(created, key=lambda c: c.created_wall)]
        upstream = upstream_figures(stack, ids)
        sample = [
            ids[i * len(ids) // min(args.histories, len(ids))] for i in range(min(args.histories, len(ids)))
        ]
        histories = asyncio.run(history_figures(stack.temporal_address, sample))

    statuses = Counter(watch.last[i].status for i in ids)
    created_wall = {c.batch_id: c.created_wall for c in created}
    objects = [watch.last[i] for i in ids]
    seen = watch.first_seen
    up_done = upstream.pop("upstream_completed_at")
    figures: dict[str, Any] = {
        "batches": args.batches,
        "lines": args.lines,
        "concurrency": args.concurrency,
        "database": "postgresql" if args.database_url else "sqlite",
        "statuses": dict(statuses),
        "create_wall_s": create_wall,
        "creates_per_s": args.batches / create_wall,
        "upload_s": [c.upload_s for c in created],
        "create_call_s": [c.create_s for c in created],
        "wall_s": wall,
        "cpu_s": cpu,
        "bench_cpu_s": bench_cpu,
        "machine_busy": busy / wall / (os.cpu_count() or 1),
        "worker_idle_cores": idle_cores,
        "workers": args.workers,
        # the worker figure is the largest single worker's peak
        "rss_peak": {"api": peaks["api"], "worker": max(peaks[name] for name in workers)},
        "rss_idle": dict(rss.first),
        "list_s": watch.list_s_waiting,
        "list_s_creating": watch.list_s_creating,
        "sweeps": watch.sweeps,
        "to_in_progress_objects_s": [b.in_progress_at - b.created_at for b in objects if b.in_progress_at],
        "to_in_progress_watched_s": [
            seen[i]["in_progress"] - created_wall[i] for i in ids if "in_progress" in seen[i]
        ],
        "in_progress_to_completed_objects_s": [
            b.completed_at - b.in_progress_at for b in objects if b.completed_at and b.in_progress_at
        ],
        "to_completed_watched_s": [
            seen[i]["completed"] - created_wall[i] for i in ids if "completed" in seen[i]
        ],
        "upstream_done_to_completed_s": [
            seen[i]["completed"] - up_done[i] for i in ids if "completed" in seen[i] and i in up_done
        ],
        **upstream,
        **histories,
    }
    return figures, statuses.get("completed", 0) == args.batches


# -- report ----------------------------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    return f"{pct(values, 0.5) * 1000:.0f} / {pct(values, 0.99) * 1000:.0f}"


def secs(values: list[float]) -> str:
    return f"{pct(values, 0.5):.1f} / {pct(values, 0.99):.1f} / {max(values, default=math.nan):.1f}"


def print_table(f: dict[str, Any]) -> None:
    n = f["batches"]
    cpu = f["cpu_s"]
    duplicates = sum(count for per, count in f["upstream_per_batch"].items() if per > 1)
    missing = f["upstream_per_batch"].get(0, 0)
    counter = f["calls_counter"]
    each_worker = " / ".join(f"{c:.1f}" for c in cpu.get("workers", [cpu["worker"]]))
    rows = [
        (
            "batches x lines (client tasks), database",
            f"{n} x {f['lines']} ({f['concurrency']}), {f['database']}",
        ),
        ("final statuses", ", ".join(f"{k} {v}" for k, v in sorted(f["statuses"].items()))),
        ("create phase s (creates/s)", f"{f['create_wall_s']:.1f} ({f['creates_per_s']:.1f}/s)"),
        ("upload p50 / p99 ms", ms(f["upload_s"])),
        ("`batches.create` p50 / p99 ms", ms(f["create_call_s"])),
        ("first create -> last terminal s", f"{f['wall_s']:.1f}"),
        ("worker processes", str(f.get("workers", 1))),
        ("**worker CPU s** (each worker)", f"**{cpu['worker']:.1f}** ({each_worker})"),
        ("**worker CPU ms per batch**", f"**{cpu['worker'] / n * 1000:.0f}**"),
        (
            "worker average cores (idle before)",
            f"{cpu['worker'] / f['wall_s']:.2f} ({f['worker_idle_cores']:.3f})",
        ),
        (
            "CPU s: API / Temporal / simulator / bench",
            f"{cpu['api']:.1f} / {cpu['temporal']:.1f} / {cpu['simulator']:.1f} / {f['bench_cpu_s']:.1f}",
        ),
        ("machine busy (both cores, all processes)", f"{f['machine_busy']:.0%}"),
        (
            "peak RSS MiB worker / API",
            f"{f['rss_peak']['worker'] / MIB:.0f} / {f['rss_peak']['api'] / MIB:.0f}",
        ),
        (f"`GET /v1/batches?limit=100` p50 / p99 ms (waiting, {len(f['list_s'])} calls)", ms(f["list_s"])),
        ("created -> in_progress p50 / p99 / max s (watched)", secs(f["to_in_progress_watched_s"])),
        ("created -> in_progress p50 / p99 / max s (objects, whole s)", secs(f["to_in_progress_objects_s"])),
        (
            "in_progress -> completed p50 / p99 / max s (objects)",
            secs(f["in_progress_to_completed_objects_s"]),
        ),
        ("upstream done -> completed p50 / p99 / max s", secs(f["upstream_done_to_completed_s"])),
        ("created -> completed p50 / p99 / max s (watched)", secs(f["to_completed_watched_s"])),
        (
            "upstream batches per batch",
            f"{f['upstream_batches'] / n:.2f} ({duplicates} with duplicates, {missing} with none)",
        ),
        (
            "upstream calls per batch (simulator's counter)",
            "n/a" if counter is None else f"{sum(counter.values()) / n:.2f}",
        ),
        ("upstream calls per batch (access log)", f"{sum(f['calls_access_log'].values()) / n:.2f}"),
        (
            f"history events per run mean / max ({f['histories']} runs)",
            f"{f['events_mean']:.1f} / {f['events_max']}",
        ),
        (
            "workflow tasks / activities / timers per run",
            " / ".join(f"{v:.1f}" for v in f["per_run_mean"].values()),
        ),
        (
            "workflow task schedule-to-start p50 / p99 / max ms",
            ms(f["wft_schedule_to_start_s"]) + f" / {max(f['wft_schedule_to_start_s']) * 1000:.0f}",
        ),
        (
            "activity schedule-to-start p50 / p99 / max ms",
            ms(f["activity_schedule_to_start_s"]) + f" / {max(f['activity_schedule_to_start_s']) * 1000:.0f}",
        ),
    ]
    print("\n| measure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(
        "\nupstream calls by route (access log): "
        + ", ".join(f"{k} {v}" for k, v in f["calls_access_log"].items())
    )
    if counter is not None:
        print(
            "upstream calls by route (simulator's counter): "
            + ", ".join(f"{k} {v}" for k, v in counter.items())
        )
    print(
        "watched = first seen by the bench's sweeps of GET /v1/batches (one every "
        f"{f['watch_interval']:g} s + the sweep itself, {f['sweeps']} sweeps); upstream done = the simulator "
        "batch's completed_at (whole seconds)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=300, help="batches to create (default 300)")
    parser.add_argument("--lines", type=int, default=10, help="lines per batch (default 10)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="client tasks creating batches (default 16)"
    )
    parser.add_argument(
        "--database-url", help="postgresql://postgres@127.0.0.1:5432/<new db>: created, then dropped"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="BATCHWAY_X=VALUE",
        help="a setting for every process of the stack, e.g. a worker setting to compare (repeatable)",
    )
    parser.add_argument(
        "--lines-per-second", type=float, default=10_000, help="simulated upstream speed (default 10000)"
    )
    parser.add_argument("--watch-interval", type=float, default=1.0, help="seconds between list sweeps")
    parser.add_argument("--histories", type=int, default=50, help="workflow histories to read (default 50)")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="worker idle CPU measured first")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for every batch")
    parser.add_argument("--py-spy", type=Path, help="record a raw py-spy profile of the worker to this file")
    parser.add_argument("--py-spy-delay", type=float, default=10.0, help="seconds after the first create")
    parser.add_argument("--py-spy-seconds", type=float, default=30.0, help="profile length")
    parser.add_argument("--json", type=Path, help="also write every figure (raw samples included) here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args()

    with bench_run("inflight", args.keep) as work:
        print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}", flush=True)
        figures, all_completed = run(args, work)
        figures["watch_interval"] = args.watch_interval
        figures["profiled"] = bool(args.py_spy)
        print_table(figures)
        if args.py_spy:
            print("\n" + profile_summary(args.py_spy))
        if args.json:
            args.json.write_text(json.dumps(figures, default=str))
    if not all_completed:
        print(f"NOT every batch completed: {figures['statuses']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
