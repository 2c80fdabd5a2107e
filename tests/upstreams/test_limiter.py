"""`UpstreamLimiter` against simulated upstreams, in virtual time (deterministic, whatever the load).

The bucket scenarios are the issue's, scaled down: 600 requests/min (capacity 600, 10/s), 900 lines,
50 ms latency, so the ideal time (the bucket admitting every line) is (900 - 600) / 10 = 30 s.
`bench/limiter_sim.py` runs the full-size ones.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable

import pytest

from batchway.upstreams.fanout.budgets import ServerBudget, SlidingWindowCap, TokenEstimates
from batchway.upstreams.fanout.limiter import LimiterConfig, Permit, UpstreamLimiter
from batchway.upstreams.fanout.registry import LimiterRegistry
from tests.upstreams.fake_bucket import (
    FakeBucketUpstream,
    HeaderMode,
    RunResult,
    go_duration,
    run_lines,
    run_virtual,
)

RPM, LINES, LATENCY = 600, 900, 0.05
IDEAL = (LINES - RPM) / (RPM / 60)


def bucket(clock: Callable[[], float], headers: HeaderMode, **overrides: float) -> FakeBucketUpstream:
    options = {"rate": RPM / 60, "capacity": RPM, "latency": LATENCY, **overrides}
    return FakeBucketUpstream(headers=headers, clock=clock, **options)  # type: ignore[arg-type]


def unlimited(clock: Callable[[], float], latency: float = 0.01) -> FakeBucketUpstream:
    return FakeBucketUpstream(rate=1e9, capacity=1e9, latency=latency, headers="none", clock=clock)


def max_in_any_window(times: list[float], window: float) -> int:
    """The most events inside any half-open interval [t, t + window)."""
    ordered = sorted(times)
    return max((bisect_left(ordered, start + window) - i for i, start in enumerate(ordered)), default=0)


# ---- pacing against a token-bucket upstream ----------------------------------------------------


@pytest.mark.parametrize("jitter", [0.0, 0.1])
def test_with_budget_headers_it_finishes_at_the_ideal_time_with_almost_no_429s(jitter: float) -> None:
    async def main() -> RunResult:
        clock = asyncio.get_running_loop().time
        upstream = bucket(clock, "full", jitter=jitter)
        return await run_lines(UpstreamLimiter(clock=clock), upstream.call, lines=LINES, clock=clock)

    result = run_virtual(main)
    assert result.elapsed <= 1.05 * IDEAL
    assert result.rate_limited_share < 0.02


@pytest.mark.parametrize("headers", ["retry-after", "retry-after-s", "none"])
def test_without_budget_headers_it_learns_the_rate_from_429s(headers: HeaderMode) -> None:
    """One wave of 429s when the bucket first runs dry (at most the window, here capped at 32), then
    a learnt rate with few 429s."""
    ceiling = 32

    async def main() -> RunResult:
        clock = asyncio.get_running_loop().time
        upstream = bucket(clock, headers, jitter=0.1)
        limiter = UpstreamLimiter(LimiterConfig(ceiling_concurrency=ceiling), clock=clock)
        return await run_lines(limiter, upstream.call, lines=LINES, clock=clock)

    result = run_virtual(main)
    assert result.elapsed <= 1.1 * IDEAL
    assert result.rate_limited <= ceiling + 0.02 * result.calls


def test_a_later_batch_spends_the_budget_saved_while_idle() -> None:
    """No headers: the learnt burst lets a second batch, after a pause, go as fast as the first."""

    async def main() -> tuple[RunResult, RunResult]:
        clock = asyncio.get_running_loop().time
        upstream = bucket(clock, "none", jitter=0.1)
        limiter = UpstreamLimiter(clock=clock)
        first = await run_lines(limiter, upstream.call, lines=LINES, clock=clock)
        await asyncio.sleep(120)  # the upstream's bucket is full again
        second = await run_lines(limiter, upstream.call, lines=LINES, clock=clock)
        return first, second

    first, second = run_virtual(main)
    assert first.elapsed <= 1.1 * IDEAL
    assert second.elapsed <= 1.1 * IDEAL
    assert second.rate_limited_share < 0.02


def test_batches_sharing_one_limiter_share_the_budget() -> None:
    async def main() -> tuple[float, int]:
        clock = asyncio.get_running_loop().time
        upstream = bucket(clock, "full", jitter=0.1)
        limiter = UpstreamLimiter(clock=clock)
        batches = [
            run_lines(limiter, upstream.call, lines=LINES // 3, workers=64, clock=clock) for _ in range(3)
        ]
        results = await asyncio.gather(*batches)
        return max(r.elapsed for r in results), sum(r.rate_limited for r in results)

    elapsed, rate_limited = run_virtual(main)
    assert elapsed <= 1.05 * IDEAL
    assert rate_limited < 0.02 * LINES


def test_token_budget_headers_pace_calls_by_estimated_tokens() -> None:
    """Requests are plentiful, tokens are not: 1,000 tokens/s and 100 tokens a call, so 10 calls/s."""

    async def main() -> RunResult:
        clock = asyncio.get_running_loop().time
        upstream = bucket(
            clock, "full", rate=1000, capacity=60000, token_rate=1000, token_capacity=6000, jitter=0.1
        )
        limiter = UpstreamLimiter(clock=clock)
        return await run_lines(
            limiter, lambda: upstream.call(100), lines=LINES, clock=clock, estimated_tokens=100
        )

    result = run_virtual(main)
    ideal = (LINES * 100 - 6000) / 1000
    assert result.elapsed <= 1.05 * ideal
    assert result.rate_limited_share < 0.02


def test_reported_token_use_stands_in_for_missing_estimates() -> None:
    async def main() -> RunResult:
        clock = asyncio.get_running_loop().time
        upstream = bucket(
            clock, "full", rate=1000, capacity=60000, token_rate=1000, token_capacity=6000, jitter=0.1
        )
        limiter = UpstreamLimiter(clock=clock)
        return await run_lines(limiter, lambda: upstream.call(100), lines=LINES, clock=clock, used_tokens=100)

    result = run_virtual(main)
    assert result.elapsed <= 1.05 * (LINES * 100 - 6000) / 1000
    assert result.rate_limited_share < 0.02


# ---- explicit caps -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", ["full", "none"])
def test_explicit_rpm_is_never_exceeded_even_when_headers_allow_more(headers: HeaderMode) -> None:
    async def main() -> tuple[RunResult, list[float]]:
        clock = asyncio.get_running_loop().time
        upstream = bucket(clock, headers, rate=1000, capacity=60000)  # far above the cap
        limiter = UpstreamLimiter(LimiterConfig(rpm=120), clock=clock)
        result = await run_lines(limiter, upstream.call, lines=400, clock=clock)
        return result, upstream.counters.accepted_at

    result, accepted_at = run_virtual(main)
    assert max_in_any_window(accepted_at, 60.0) == 120
    assert result.elapsed <= 3 * 61 + 1  # 120 at once, then 120 a minute (plus the caps' margin) later...
    assert result.rate_limited == 0


def test_explicit_tpm_is_never_exceeded_and_corrected_by_reported_use() -> None:
    """Estimates of 100 tokens, but each call really uses 200: the cap holds on the real use."""
    admitted: list[float] = []

    async def main() -> RunResult:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(LimiterConfig(tpm=6000), clock=clock)

        async def call() -> tuple[int, dict[str, str]]:
            admitted.append(clock())
            await asyncio.sleep(0.01)
            return 200, {}

        return await run_lines(limiter, call, lines=150, clock=clock, estimated_tokens=100, used_tokens=200)

    run_virtual(main)
    # The first calls go out on the estimate before any use is reported, so allow their overshoot once.
    assert max_in_any_window(admitted, 60.0) * 200 <= 6000 + 100 * 60
    assert max_in_any_window(admitted[60:], 60.0) * 200 <= 6000


def test_max_concurrency_is_never_exceeded() -> None:
    async def main() -> int:
        clock = asyncio.get_running_loop().time
        upstream = unlimited(clock)
        limiter = UpstreamLimiter(LimiterConfig(max_concurrency=5), clock=clock)
        await run_lines(limiter, upstream.call, lines=500, clock=clock)
        return upstream.counters.max_in_flight

    assert run_virtual(main) == 5


# ---- discovery on an unlimited upstream --------------------------------------------------------


def test_concurrency_grows_quickly_to_the_ceiling_on_an_unlimited_upstream() -> None:
    async def main() -> tuple[float, int, int]:
        clock = asyncio.get_running_loop().time
        upstream = unlimited(clock, latency=0.1)
        limiter = UpstreamLimiter(clock=clock)
        started = clock()
        await run_lines(limiter, upstream.call, lines=3000, clock=clock)
        return clock() - started, limiter.stats().concurrency_limit, upstream.counters.max_in_flight

    elapsed, limit, max_in_flight = run_virtual(main)
    assert limit == max_in_flight == 256
    # Slow start (8 -> 256 in 5 round trips) and then 256 calls per round trip of 0.1 s.
    assert elapsed <= 0.5 + 3000 / 256 * 0.1 + 0.2


def test_uncontended_acquire_does_not_suspend() -> None:
    """The fast path is plain function calls: no task, no future, no trip through the event loop."""
    limiter = UpstreamLimiter()
    coroutine = limiter.acquire()
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)
    permit = finished.value.value
    assert isinstance(permit, Permit)
    permit.done(200, {})
    assert limiter.stats().in_flight == 0


# ---- 429s, pauses and errors -------------------------------------------------------------------


def test_retry_after_pauses_every_caller() -> None:
    async def main() -> tuple[float, list[float], float | None]:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(clock=clock)
        permit = await limiter.acquire()
        await asyncio.sleep(1.0)
        refused_at = clock()
        permit.done(429, {"retry-after": "2"})
        paused_until = limiter.stats().paused_until

        async def caller() -> float:
            p = await limiter.acquire()
            p.done(200, {})
            return clock()

        admitted = await asyncio.gather(*(caller() for _ in range(10)))
        return refused_at, admitted, paused_until

    refused_at, admitted, paused_until = run_virtual(main)
    assert paused_until == pytest.approx(refused_at + 2)
    assert min(admitted) >= refused_at + 2


def test_retry_after_ms_wins_over_retry_after() -> None:
    async def main() -> float:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(clock=clock)
        (await limiter.acquire()).done(429, {"retry-after-ms": "300", "retry-after": "5"})
        started = clock()
        (await limiter.acquire()).done(200, {})
        return clock() - started

    assert run_virtual(main) == pytest.approx(0.3)


def test_a_429_without_retry_after_shrinks_the_window_and_pauses_briefly() -> None:
    async def main() -> tuple[int, int, float]:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(LimiterConfig(initial_concurrency=16), clock=clock)
        permits = [await limiter.acquire() for _ in range(16)]
        # All sent before the first answer: the first 429 cuts once, the others are the same episode.
        for permit in permits:
            permit.done(429, None)
        after_cut = limiter.stats().concurrency_limit
        started = clock()
        (await limiter.acquire()).done(200, {})
        return limiter.stats().rate_limited, after_cut, clock() - started

    rate_limited, after_cut, waited = run_virtual(main)
    assert rate_limited == 16
    assert after_cut == 11  # 16 x 0.7, once
    assert 0 < waited <= 1.0


def test_a_429_the_headers_explain_does_not_arm_the_learnt_rate_but_others_do() -> None:
    exhausted = {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "6s",
        "retry-after-ms": "100",
    }
    plenty = {**exhausted, "x-ratelimit-remaining-requests": "500", "x-ratelimit-reset-requests": "1s"}

    async def paced_rate_after(refusal: dict[str, str]) -> float | None:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(clock=clock)
        for _ in range(20):  # a second of successes to learn a rate from
            (await limiter.acquire()).done(200, plenty)
            await asyncio.sleep(0.05)
        (await limiter.acquire()).done(429, refusal)
        return limiter.stats().paced_rate

    assert run_virtual(lambda: paced_rate_after(exhausted)) is None  # `ServerBudget` paces for it
    assert run_virtual(lambda: paced_rate_after(plenty)) is not None  # a limit the headers don't show


def test_a_key_out_of_budget_backs_off_without_learning_a_rate() -> None:
    """Nothing but bare 429s from the start: pauses that double, and no rate made up from nothing."""

    async def main() -> tuple[list[float], float | None]:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(LimiterConfig(max_concurrency=1), clock=clock)
        started_at = []
        for _ in range(5):
            permit = await limiter.acquire()
            started_at.append(clock())
            await asyncio.sleep(0.01)
            permit.done(429, None)
        return started_at, limiter.stats().paced_rate

    started_at, paced_rate = run_virtual(main)
    gaps = [later - earlier - 0.01 for earlier, later in zip(started_at, started_at[1:], strict=False)]
    assert gaps == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert paced_rate is None


def test_transport_errors_do_not_collapse_concurrency() -> None:
    async def main() -> tuple[int, int]:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(clock=clock)
        for _ in range(50):  # fifty episodes of timeouts, one round trip apart
            permits = [await limiter.acquire() for _ in range(limiter.stats().concurrency_limit)]
            await asyncio.sleep(1.0)
            for permit in permits:
                permit.done(None, None)
        after_errors = limiter.stats().concurrency_limit
        upstream = unlimited(clock)
        await run_lines(limiter, upstream.call, lines=2000, clock=clock)
        return after_errors, limiter.stats().concurrency_limit

    after_errors, recovered = run_virtual(main)
    assert after_errors >= 8  # never below the initial window
    assert recovered == 256


def test_a_503_with_retry_after_is_honoured() -> None:
    async def main() -> float:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(clock=clock)
        (await limiter.acquire()).done(503, {"Retry-After": "1"})
        started = clock()
        (await limiter.acquire()).done(200, {})
        return clock() - started

    assert run_virtual(main) == pytest.approx(1.0)


# ---- permits and stats ---------------------------------------------------------------------------


def test_stats_count_calls_outcomes_and_waiters() -> None:
    async def main() -> None:
        clock = asyncio.get_running_loop().time
        limiter = UpstreamLimiter(LimiterConfig(max_concurrency=2), clock=clock)
        first, second = await limiter.acquire(), await limiter.acquire()
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        stats = limiter.stats()
        assert (stats.in_flight, stats.waiting, stats.concurrency_limit, stats.calls) == (2, 1, 2, 2)
        first.done(200, {})
        second.done(None, None)
        third = await waiting
        third.done(429, {"retry-after": "1"})
        third.done(200, {})  # a second report is ignored
        stats = limiter.stats()
        assert (stats.in_flight, stats.waiting, stats.calls) == (0, 0, 3)
        assert (stats.rate_limited, stats.errors) == (1, 1)
        assert stats.paused_until == pytest.approx(clock() + 1)
        assert stats.admitted_per_second > 0

    run_virtual(main)


def test_permit_as_context_manager_reports_errors_and_frees_the_slot() -> None:
    async def main() -> None:
        limiter = UpstreamLimiter(LimiterConfig(max_concurrency=1), clock=asyncio.get_running_loop().time)
        with pytest.raises(RuntimeError):
            async with await limiter.acquire():
                raise RuntimeError("connection reset")
        assert limiter.stats().errors == 1
        async with await limiter.acquire():
            pass  # returned without reporting: freed, no feedback
        async with await limiter.acquire() as permit:
            permit.done(200, {})
        stats = limiter.stats()
        assert (stats.in_flight, stats.errors, stats.calls) == (0, 1, 3)

    run_virtual(main)


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def main() -> None:
        limiter = UpstreamLimiter(LimiterConfig(max_concurrency=1), clock=asyncio.get_running_loop().time)
        holder = await limiter.acquire()
        cancelled = asyncio.ensure_future(limiter.acquire())
        queued = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        holder.done(200, {})
        permit = await asyncio.wait_for(queued, timeout=1)
        assert limiter.stats().in_flight == 1
        permit.done(200, {})
        assert limiter.stats().in_flight == 0
        assert cancelled.cancelled()

    run_virtual(main)


def test_registry_shares_one_limiter_per_upstream_and_key() -> None:
    registry = LimiterRegistry()
    first = registry.get("vllm-a", "sk-1", LimiterConfig(rpm=60))
    assert registry.get("vllm-a", "sk-1") is first
    assert registry.get("vllm-a", "sk-2") is not first
    assert registry.get("vllm-b", "sk-1") is not first
    assert first.config.rpm == 60
    assert "sk-1" not in repr(registry._limiters)


# ---- building blocks -----------------------------------------------------------------------------


def test_server_budget_counts_calls_in_flight_against_remaining() -> None:
    budget = ServerBudget()
    # After our 10th call the server had 5 left, refilling 1,200 over 60 s (20/s): reset = 55 / 20.
    budget.observe(60, 5, 55 / 20, sent_at=100.0, units_through=10, now=100.2)
    assert budget.refill_rate == pytest.approx(20.0)
    assert budget.available(100.0, units_sent=13) == pytest.approx(2.0)  # 3 more sent since
    assert budget.available(100.5, units_sent=13) == pytest.approx(12.0)  # + 0.5 s of refill
    assert budget.available(1000.0, units_sent=13) == float("inf")  # stale: no longer trusted
    assert budget.delay(1, 100.0, units_sent=20) == pytest.approx((6 + 0.4) / 20)  # shortfall + margin


def test_server_budget_ignores_an_older_answer_and_useless_headers() -> None:
    budget = ServerBudget()
    budget.observe(60, 30, 1.5, sent_at=10.0, units_through=50, now=10.1)
    budget.observe(60, 59, 0.05, sent_at=9.0, units_through=40, now=10.2)  # older call, answered late
    assert budget.available(10.0, units_sent=50) == pytest.approx(30.0)
    empty = ServerBudget()
    empty.observe(None, 5, None, sent_at=0.0, units_through=1, now=0.1)  # remaining alone says nothing
    assert empty.available(0.1, units_sent=100) == float("inf")


def test_server_budget_without_reset_assumes_a_per_minute_limit() -> None:
    budget = ServerBudget()
    budget.observe(600, 0, None, sent_at=0.0, units_through=1, now=0.1)
    assert budget.refill_rate == pytest.approx(10.0)


def test_sliding_window_cap() -> None:
    cap = SlidingWindowCap(3, window=60.0)
    for at in (0.0, 1.0, 2.0):
        assert cap.delay(1, at) == 0
        cap.admit(1, at)
    assert cap.delay(1, 30.0) == pytest.approx(30.0, abs=1e-6)  # the call at 0 leaves the window at 60
    assert cap.delay(1, 60.0) == 0
    entry = cap.admit(1, 60.0)
    cap.correct(entry, 2)  # it used two units: the next one waits for the calls at 1 and 2
    assert cap.delay(1, 61.5) == pytest.approx(0.5, abs=1e-6)


def test_go_duration_round_trips_through_the_parser() -> None:
    from batchway.upstreams.fanout.ratelimit_headers import parse_duration

    for seconds in (0.012, 0.5, 1.0, 17.28, 59.99, 360.0, 3723.5):
        assert parse_duration(go_duration(seconds)) == pytest.approx(seconds, abs=0.006)


def test_token_estimates_scale_up_low_estimates_and_stand_in_for_missing_ones() -> None:
    estimates = TokenEstimates()
    assert estimates.for_call(0) == 0  # nothing known yet
    estimates.learn(estimated=100, used=250)
    assert estimates.for_call(100) == pytest.approx(250)  # calls use 2.5x what callers estimate
    assert estimates.for_call(0) == pytest.approx(250)  # the average use
    estimates.learn(estimated=1000, used=10)
    assert estimates.for_call(1000) >= 1000  # an over-estimate is never scaled down
