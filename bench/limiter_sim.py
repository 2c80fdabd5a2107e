"""Limiter simulation: `UpstreamLimiter` against an in-process token-bucket upstream, next to two naive
client recipes, in virtual time (a 40-second scenario runs in about a second, whatever the load).

Each scenario is a bucket of `rpm` requests (capacity = rpm unless given, starting full, refilling at
rpm/60 per second) answering after a fixed latency (times 1 +/- `--jitter`, uniformly), and a batch
of lines run by a pool of 300 workers that retry a line after each 429. The upstream tells its budget
in one of four ways:
- `full`: x-ratelimit-* headers on every answer, retry-after-ms and retry-after on 429s (like OpenAI);
- `retry-after`: retry-after-ms and retry-after on 429s only;
- `retry-after-s`: a whole-second retry-after on 429s only;
- `none`: bare 429s.

- `limiter`: batchway's `UpstreamLimiter`, nothing configured.
- `sem5` / `sem50`: the usual client recipe, a semaphore of 5 or 50 and a sleep of retry-after (1 s
  when absent) after a 429.

"ideal" is the time the bucket needs to admit every line, (lines - capacity) / refill rate; when the
bucket holds every line it is the time a window of 256 calls needs, ceil(lines / 256) * latency.
"later 429 %" counts only 429s to calls started after the first 429 came back: the calls already on
the wire when an upstream without budget headers first refuses are lost whatever the client does.

    .venv/bin/python bench/limiter_sim.py                 # the scenarios of the issue
    .venv/bin/python bench/limiter_sim.py --jitter 0.1    # latencies spread +/-10%
    .venv/bin/python bench/limiter_sim.py --quick         # only the 1,200/min scenario
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchway.upstreams.fanout.limiter import LimiterConfig, UpstreamLimiter  # noqa: E402
from batchway.upstreams.fanout.ratelimit_headers import parse_retry_after  # noqa: E402
from tests.upstreams.fake_bucket import (  # noqa: E402
    FakeBucketUpstream,
    HeaderMode,
    OutcomeCounter,
    RunResult,
    run_lines,
    run_virtual,
)

CEILING = 256


@dataclass(frozen=True)
class Scenario:
    rpm: int
    lines: int
    latency: float
    capacity: int | None = None

    @property
    def bucket_capacity(self) -> int:
        return self.capacity or self.rpm

    @property
    def ideal(self) -> float:
        rate = self.rpm / 60
        if self.lines > self.bucket_capacity:
            return (self.lines - self.bucket_capacity) / rate
        return math.ceil(self.lines / CEILING) * self.latency

    def describe(self) -> str:
        capacity = f", capacity {self.bucket_capacity:,}" if self.capacity else ""
        return f"{self.rpm:,}/min{capacity}, {self.lines:,} lines, {self.latency * 1000:.0f} ms latency"


SCENARIOS = [
    Scenario(rpm=1200, lines=2000, latency=0.2),
    Scenario(rpm=6000, lines=3000, latency=0.2),
    Scenario(rpm=6000, lines=3000, latency=0.2, capacity=600),
]
HEADER_MODES: list[HeaderMode] = ["full", "retry-after", "retry-after-s", "none"]


async def naive_recipe(
    call: Callable[[], Awaitable[tuple[int, dict[str, str]]]],
    *,
    lines: int,
    concurrency: int,
    clock: Callable[[], float],
) -> RunResult:
    """A semaphore of `concurrency` and a sleep of retry-after (1 s without one) after each 429."""
    semaphore = asyncio.Semaphore(concurrency)
    outcomes = OutcomeCounter(clock)
    started = clock()

    async def line() -> None:
        async with semaphore:
            while True:
                sent_at = clock()
                status, headers = await call()
                outcomes.count(status, sent_at)
                if status != 429:
                    return
                retry_after = parse_retry_after(headers)
                await asyncio.sleep(1.0 if retry_after is None else retry_after)

    await asyncio.gather(*(line() for _ in range(lines)))
    return outcomes.result(elapsed=clock() - started, lines=lines)


def run(scenario: Scenario, headers: HeaderMode, client: str, jitter: float) -> RunResult:
    async def main() -> RunResult:
        clock = asyncio.get_running_loop().time
        upstream = FakeBucketUpstream(
            rate=scenario.rpm / 60,
            capacity=scenario.bucket_capacity,
            latency=scenario.latency,
            headers=headers,
            clock=clock,
            jitter=jitter,
        )
        if client == "limiter":
            limiter = UpstreamLimiter(LimiterConfig(ceiling_concurrency=CEILING), clock=clock)
            return await run_lines(limiter, upstream.call, lines=scenario.lines, clock=clock)
        concurrency = int(client.removeprefix("sem"))
        return await naive_recipe(upstream.call, lines=scenario.lines, concurrency=concurrency, clock=clock)

    return run_virtual(main)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only the first scenario")
    parser.add_argument("--jitter", type=float, default=0.0, help="latency spread, e.g. 0.1 for +/-10%%")
    args = parser.parse_args()
    scenarios = SCENARIOS[:1] if args.quick else SCENARIOS
    started = time.perf_counter()
    print(f"latency jitter +/-{args.jitter:.0%}")
    print(
        f"{'headers':<14} {'client':<8} {'time s':>8} {'x ideal':>8} {'calls':>7} {'429s':>6} {'429 %':>7}"
        f" {'later 429 %':>12}"
    )
    for scenario in scenarios:
        print(f"\n{scenario.describe()}: ideal {scenario.ideal:.1f} s")
        for headers in HEADER_MODES:
            for client in ("limiter", "sem5", "sem50"):
                result = run(scenario, headers, client, args.jitter)
                print(
                    f"{headers:<14} {client:<8} {result.elapsed:8.1f} {result.elapsed / scenario.ideal:8.2f}"
                    f" {result.calls:7d} {result.rate_limited:6d} {100 * result.rate_limited_share:6.1f}%"
                    f" {100 * result.rate_limited_later / result.calls:11.1f}%"
                )
    print(f"\n(virtual time; {time.perf_counter() - started:.1f} s of real time)")


if __name__ == "__main__":
    main()
