"""Ingest benchmark: upload a big batch input with the openai SDK, create the batch, wait for
`in_progress`, and record the peak RSS of the API and worker processes meanwhile.

Each file size runs against a fresh stack (separate Temporal, simulator, worker and API processes),
so a process's peak belongs to one file only; all sizes run in one invocation so they share the
machine's conditions.

    .venv/bin/python bench/ingest.py                 # 50,000 x 2 KB lines (100 MB) and 5,000 (10 MB)
    .venv/bin/python bench/ingest.py --quick         # 5,000 and 500 lines
    .venv/bin/python bench/ingest.py --lines 20000 --line-bytes 4000 --small-lines 2000
    .venv/bin/python bench/ingest.py --lines 1 --small-lines 0 --line-bytes 50000000   # one 50 MB line
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from stack import MIB, RssSampler, bench_run, running_stack

MODEL = "gpt-4o-mini"
TARGET_RSS_BYTES = 200 * 10**6  # 200 MB = 191 MiB
WATCHED = ("api", "worker")


def write_input(path: Path, lines: int, line_bytes: int) -> int:
    """A chat-completions batch input of `lines` lines, each about `line_bytes` bytes; returns its size."""
    rng = random.Random(42)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(500)]
    pool = " ".join(rng.choice(words) for _ in range(40_000))

    def line(i: int, text: str) -> bytes:
        return orjson.dumps(
            {
                "custom_id": f"request-{i:07d}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "max_tokens": 64,
                    "messages": [
                        {"role": "system", "content": "Summarise the text in one sentence."},
                        {"role": "user", "content": text},
                    ],
                },
            }
        )

    text_len = max(1, line_bytes - len(line(0, "")) - 1)
    pool *= text_len // len(pool) + 2  # very long lines (--line-bytes in MB) need a longer pool
    with open(path, "wb") as out:
        for i in range(lines):
            start = (i * 7919) % (len(pool) - text_len)
            out.write(line(i, pool[start : start + text_len]) + b"\n")
    return path.stat().st_size


@dataclass
class Row:
    lines: int
    size: int
    upload_s: float
    create_call_s: float
    to_in_progress_s: float
    idle: dict[str, int]
    peak: dict[str, int]
    hwm: dict[str, int | None]
    samples: int

    @property
    def total_s(self) -> float:
        return self.upload_s + self.to_in_progress_s


def run_case(work: Path, input_path: Path, lines: int, timeout: float) -> Row:
    with running_stack(work / f"stack-{lines}") as stack:
        client = stack.client(timeout=600)
        with RssSampler({name: stack.pid(name) for name in WATCHED}) as rss:
            started = time.perf_counter()
            with open(input_path, "rb") as handle:
                uploaded = client.files.create(file=handle, purpose="batch")
            uploaded_at = time.perf_counter()
            batch = client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            created_at = time.perf_counter()
            while batch.status != "in_progress":
                if batch.status in ("failed", "expired", "cancelled", "completed"):
                    raise RuntimeError(f"batch {batch.id} ended {batch.status}: {batch.errors}")
                if time.perf_counter() - created_at > timeout:
                    raise TimeoutError(f"batch {batch.id} still {batch.status} after {timeout}s")
                stack.check_alive()
                time.sleep(0.05)
                batch = client.batches.retrieve(batch.id)
            in_progress_at = time.perf_counter()
            time.sleep(0.5)  # let the worker settle after the submit activity, still sampling
        return Row(
            lines=lines,
            size=uploaded.bytes,
            upload_s=uploaded_at - started,
            create_call_s=created_at - uploaded_at,
            to_in_progress_s=in_progress_at - uploaded_at,
            idle=rss.first,
            peak=rss.peak,
            hwm={name: rss.high_water_mark(name) for name in WATCHED},
            samples=rss.samples,
        )


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MIB:.0f}"


def print_table(rows: list[Row]) -> None:
    print(
        "\n| lines | file MiB | upload s | create call s | create -> in_progress s | total s "
        "| API RSS MiB idle -> peak (VmHWM) | worker RSS MiB idle -> peak (VmHWM) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [
            f"{r.lines:,}",
            f"{r.size / MIB:.1f}",
            f"{r.upload_s:.2f}",
            f"{r.create_call_s:.2f}",
            f"{r.to_in_progress_s:.2f}",
            f"{r.total_s:.2f}",
            *(f"{mib(r.idle[n])} -> **{mib(r.peak[n])}** ({mib(r.hwm[n])})" for n in WATCHED),
        ]
        print("| " + " | ".join(cells) + " |")
    samples = ", ".join(str(r.samples) for r in rows)
    print(f"\nRSS sampled every 50 ms ({samples} samples), children included.")
    for r in rows:
        # The kernel's high-water mark also catches spikes shorter than the sampling interval.
        over = [n for n in WATCHED if max(r.peak[n], r.hwm[n] or 0) > TARGET_RSS_BYTES]
        verdict = (
            f"OVER the 200 MB target: {', '.join(over)}"
            if over
            else "both within the 200 MB (191 MiB) target"
        )
        print(f"{r.lines:,} lines: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=50_000, help="lines of the big file (default 50000)")
    parser.add_argument(
        "--small-lines", type=int, help="lines of the small file (default lines/10, 0 skips it)"
    )
    parser.add_argument("--line-bytes", type=int, default=2000, help="bytes per line (default 2000)")
    parser.add_argument("--quick", action="store_true", help="5,000 and 500 lines")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for in_progress")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args()
    if args.quick:
        args.lines = 5_000
    small = args.lines // 10 if args.small_lines is None else args.small_lines
    sizes = sorted({n for n in (small, args.lines) if n > 0})

    with bench_run("ingest", args.keep) as work:
        rows = []
        inputs = {}
        for lines in sizes:
            inputs[lines] = work / f"input-{lines}.jsonl"
            size = write_input(inputs[lines], lines, args.line_bytes)
            print(f"generated {lines:,} lines, {size / MIB:.1f} MiB", flush=True)
        for lines in sizes:
            print(f"running {lines:,} lines ...", flush=True)
            rows.append(run_case(work, inputs[lines], lines, args.timeout))
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
