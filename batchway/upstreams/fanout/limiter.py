"""`UpstreamLimiter`: how fast batchway may call one (upstream, key), found from the upstream's answers.

One limiter per (upstream, key) is shared by every batch and chunk in a worker process
(`registry.LimiterRegistry`). A caller takes a `Permit` before each call and reports the outcome on it:

    async with await limiter.acquire(estimated_tokens=n) as permit:
        response = await client.post(...)
        permit.done(response.status_code, response.headers, used_tokens=usage_total)

With nothing configured, a call starts when all of these allow it (each a small class of its own):
- `ConcurrencyWindow`, the calls in flight: slow start (doubling every round trip) while calls
  succeed, x0.7 once per episode of 429s, x0.8 for timeouts and 5xx overload answers;
- `ServerBudget`, one for requests and one for tokens: the upstream's `x-ratelimit-*` budget minus
  what we sent since the answer that reported it, refilled at the rate the headers imply. It spends
  the remaining budget at once, then admits at the refill rate, with almost no 429s;
- a shared pause: a 429's `retry-after-ms`/`retry-after` holds *every* caller of the limiter (a 429
  without one: a short backoff, doubling while 429s go on);
- `RatePacer`: a rate and burst learnt from 429s that the headers do not explain (none sent, or a
  limit they do not describe).
Explicit `rpm`/`tpm` (`SlidingWindowCap`) and `max_concurrency` are hard caps on top of all that.

Waiting callers queue FIFO. Only the head is looked at, when a call finishes or when the one loop
timer fires, so a call costs O(1) work and no task of its own; a free limiter admits without
suspending.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType

from batchway.upstreams.fanout.budgets import ServerBudget, SlidingWindowCap, TokenEstimates, WindowEntry
from batchway.upstreams.fanout.config import LimiterConfig, LimiterStats
from batchway.upstreams.fanout.meter import RateMeter
from batchway.upstreams.fanout.pacer import RatePacer
from batchway.upstreams.fanout.ratelimit_headers import RateLimitHeaders, parse_retry_after, rate_limit_fields
from batchway.upstreams.fanout.window import ConcurrencyWindow

__all__ = ["LimiterConfig", "LimiterStats", "Permit", "UpstreamLimiter"]

# Answers that mean "the upstream is overloaded", like a timeout (status None): shrink, don't pause.
OVERLOAD_STATUSES = frozenset({408, 502, 503, 504, 529})
RATE_LIMITED_CUT = 0.7  # window factor per 429 episode
OVERLOAD_CUT = 0.8  # window factor per overload/timeout episode (never below the initial window)
BACKOFF_BASE_SECONDS = 0.1  # pause after a 429 with no retry-after, doubling per episode without success
BACKOFF_MAX_SECONDS = 10.0
# The caps' window: a minute, plus a margin for the time between admitting a call and the upstream
# seeing it (connection set-up, client queues), which differs from call to call.
CAP_WINDOW_SECONDS = 61.0
_NOW = 1e-6  # a delay this small is no delay (keeps float noise from spinning the timer)


class Permit:
    """The right to make one call. Report its outcome with `done` exactly once (later calls are ignored).

    As an async context manager it reports a transport error if the body raised before `done`, and
    simply frees the slot if the body was cancelled or returned without calling `done`.
    """

    __slots__ = (
        "_limiter",
        "sent_at",
        "request_seq",
        "token_seq",
        "tokens",
        "estimated_tokens",
        "was_full",
        "paced",
        "tpm_entry",
        "_open",
    )

    def __init__(
        self,
        limiter: UpstreamLimiter,
        *,
        sent_at: float,
        request_seq: int,
        token_seq: float,
        tokens: float,
        estimated_tokens: int,
        was_full: bool,
    ) -> None:
        self._limiter = limiter
        self.sent_at = sent_at
        self.request_seq = request_seq  # our cumulative requests sent, this call included
        self.token_seq = token_seq  # the same in (estimated) tokens
        self.tokens = tokens  # this call's token estimate, as counted
        self.estimated_tokens = estimated_tokens  # the caller's (0: none given)
        self.was_full = was_full  # the window was the bottleneck when this call was admitted
        self.paced = False  # the learnt rate (not saved credit) was what held this call back
        self.tpm_entry: WindowEntry | None = None  # its place in the tpm cap's log, to correct
        self._open = True

    def done(
        self, status_code: int | None, headers: Mapping[str, str] | None, used_tokens: int | None = None
    ) -> None:
        """The call's outcome: its HTTP status (None for a transport error or timeout), the answer's
        headers, and the tokens it really used if known."""
        if self._open:
            self._open = False
            self._limiter._on_done(self, status_code, headers, used_tokens)

    def release(self) -> None:
        """Free the slot without any feedback (the call was not made, or its outcome says nothing)."""
        if self._open:
            self._open = False
            self._limiter._on_released()

    async def __aenter__(self) -> Permit:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None or issubclass(exc_type, asyncio.CancelledError):
            self.release()
        else:
            self.done(None, None)


class UpstreamLimiter:
    def __init__(
        self, config: LimiterConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock` must tick with the running event loop's clock (`loop.time()`, time.monotonic by
        default), because waits are loop timers."""
        self.config = config = config or LimiterConfig()
        self._clock = clock
        cap = config.max_concurrency or config.ceiling_concurrency
        self._window = ConcurrencyWindow(initial=config.initial_concurrency, cap=cap)
        self._error_floor = min(config.initial_concurrency, cap)
        self._rpm = SlidingWindowCap(config.rpm, CAP_WINDOW_SECONDS) if config.rpm else None
        self._tpm = SlidingWindowCap(config.tpm, CAP_WINDOW_SECONDS) if config.tpm else None
        self._server_requests = ServerBudget()
        self._server_tokens = ServerBudget()
        self._pacer = RatePacer()
        self._admitted = RateMeter(window=5.0, slots=20)
        self._in_flight = 0
        self._requests_sent = 0
        self._tokens_sent = 0.0
        self._rtt = 0.0  # smoothed latency of successful calls
        self._token_estimates = TokenEstimates()
        self._paused_until = -math.inf
        self._backoffs = 0  # 429 episodes without retry-after since the last success
        self._rate_limited = self._errors = 0
        self._waiters: deque[tuple[int, asyncio.Future[Permit]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    # ---- admission ------------------------------------------------------------------------------

    async def acquire(self, estimated_tokens: int = 0) -> Permit:
        """Wait for a slot and for rate budget; the tokens estimate paces tpm before the answer is known."""
        if not self._waiters:
            now = self._clock()
            tokens = self._token_estimates.for_call(estimated_tokens)
            if self._delay(tokens, now) <= _NOW:
                return self._admit(tokens, estimated_tokens, now)
        waiter: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        self._waiters.append((estimated_tokens, waiter))
        if len(self._waiters) == 1:
            self._serve_queue()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # admitted just as we were cancelled
                waiter.result().release()
            self._serve_queue()  # we may have been the head of the queue
            raise

    def _delay(self, tokens: float, now: float) -> float:
        """Seconds until a call of `tokens` may start; inf = when a call in flight finishes."""
        if self._in_flight >= self._window.slots:
            return math.inf
        delay = max(
            self._paused_until - now,
            self._pacer.delay(now),
            self._server_requests.delay(1.0, now, self._requests_sent),
        )
        if tokens > 0:
            delay = max(delay, self._server_tokens.delay(tokens, now, self._tokens_sent))
            if self._tpm is not None:
                delay = max(delay, self._tpm.delay(tokens, now))
        if self._rpm is not None:
            delay = max(delay, self._rpm.delay(1.0, now))
        return delay

    def _admit(self, tokens: float, estimated_tokens: int, now: float) -> Permit:
        self._in_flight += 1
        self._requests_sent += 1
        self._tokens_sent += tokens
        permit = Permit(
            self,
            sent_at=now,
            request_seq=self._requests_sent,
            token_seq=self._tokens_sent,
            tokens=tokens,
            estimated_tokens=estimated_tokens,
            was_full=self._in_flight >= self._window.slots,
        )
        if self._rpm is not None:
            self._rpm.admit(1.0, now)
        if self._tpm is not None:
            permit.tpm_entry = self._tpm.admit(tokens, now)
        permit.paced = self._pacer.on_admit(now)
        self._admitted.add(now)
        return permit

    def _serve_queue(self) -> None:
        """Admit waiters from the head while they may start; then sleep until the head may."""
        now = self._clock()
        waiters = self._waiters
        delay = math.inf
        while waiters:
            estimated_tokens, waiter = waiters[0]
            if waiter.done():  # cancelled while waiting
                waiters.popleft()
                continue
            tokens = self._token_estimates.for_call(estimated_tokens)  # as learnt by now
            delay = self._delay(tokens, now)
            if delay > _NOW:
                break
            waiters.popleft()
            waiter.set_result(self._admit(tokens, estimated_tokens, now))
        if waiters and delay != math.inf:
            self._wake_at(now + delay)  # a time gate; a slot gate is woken by the next finished call

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            if self._timer_at <= when:
                return  # an earlier wake-up will look again
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(when - self._clock(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._serve_queue()

    # ---- feedback -------------------------------------------------------------------------------

    def _on_released(self) -> None:
        self._in_flight -= 1
        self._serve_queue()

    def _on_done(
        self, permit: Permit, status: int | None, headers: Mapping[str, str] | None, used_tokens: int | None
    ) -> None:
        now = self._clock()
        self._in_flight -= 1
        headers = rate_limit_fields(headers)  # the few we read, in one pass
        budget = RateLimitHeaders.from_headers(headers)
        if not budget.is_empty:
            self._observe_budget(permit, budget, now)
        if used_tokens is not None and used_tokens >= 0:
            self._learn_tokens(permit, used_tokens)
        accepted = status is not None and 200 <= status < 300
        self._pacer.on_answer(
            accepted=accepted, refused=status == 429, sent_at=permit.sent_at, paced=permit.paced, now=now
        )
        if status is None or status in OVERLOAD_STATUSES:
            self._on_overload(permit, headers, now)
        elif status == 429:
            self._on_rate_limited(permit, headers, budget, now)
        elif accepted:
            self._on_success(permit, now)
        self._serve_queue()

    def _observe_budget(self, permit: Permit, budget: RateLimitHeaders, now: float) -> None:
        self._server_requests.observe(
            budget.limit_requests,
            budget.remaining_requests,
            budget.reset_requests,
            sent_at=permit.sent_at,
            units_through=permit.request_seq,
            now=now,
        )
        self._server_tokens.observe(
            budget.limit_tokens,
            budget.remaining_tokens,
            budget.reset_tokens,
            sent_at=permit.sent_at,
            units_through=permit.token_seq,
            now=now,
        )

    def _learn_tokens(self, permit: Permit, used_tokens: int) -> None:
        self._token_estimates.learn(permit.estimated_tokens, used_tokens)
        if permit.tpm_entry is not None and self._tpm is not None:
            self._tpm.correct(permit.tpm_entry, used_tokens)

    def _on_success(self, permit: Permit, now: float) -> None:
        self._backoffs = 0
        self._rtt = 0.9 * self._rtt + 0.1 * (now - permit.sent_at) if self._rtt else now - permit.sent_at
        self._window.on_success(was_full=permit.was_full, room_for_another_window=self._has_room(now))

    def _has_room(self, now: float) -> bool:
        """Do the upstream's headers show budget for another full window of calls right now?"""
        if not self._server_requests.is_active(now):
            return False
        window = self._window.limit
        if self._server_requests.available(now, self._requests_sent) < window:
            return False
        typical = self._token_estimates.typical
        if typical > 0 and self._server_tokens.is_active(now):
            return self._server_tokens.available(now, self._tokens_sent) >= window * typical
        return True

    def _on_rate_limited(
        self, permit: Permit, headers: Mapping[str, str], budget: RateLimitHeaders, now: float
    ) -> None:
        self._rate_limited += 1
        new_episode = self._window.on_congestion(sent_at=permit.sent_at, now=now, factor=RATE_LIMITED_CUT)
        if new_episode and not self._explained_by_headers(budget, permit.tokens, now):
            # A limit we have no budget headers for (none at all, or tokens with no estimates, or a
            # hidden per-second limit): learn its rate from the 429s.
            self._pacer.open_episode(
                now,
                sent_at=permit.sent_at,
                sent_on_credit=not permit.paced,
                in_flight=self._in_flight,
                rtt=self._rtt,
            )
        retry_after = parse_retry_after(headers)
        if retry_after is None:
            if new_episode:
                self._backoffs += 1
            retry_after = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, self._backoffs - 1))
        self._pause_until(now + retry_after)

    def _explained_by_headers(self, budget: RateLimitHeaders, tokens: float, now: float) -> bool:
        """Does a 429's own budget show what ran out, in a dimension `ServerBudget` already paces?"""
        if budget.remaining_requests == 0 and self._server_requests.can_pace(now):
            return True
        return (
            budget.remaining_tokens is not None
            and budget.remaining_tokens < tokens
            and self._server_tokens.can_pace(now)
        )

    def _on_overload(self, permit: Permit, headers: Mapping[str, str] | None, now: float) -> None:
        self._errors += 1
        # Timeouts and 5xx are weak evidence about capacity: never shrink below the initial window.
        self._window.on_congestion(
            sent_at=permit.sent_at,
            now=now,
            factor=OVERLOAD_CUT,
            floor=self._error_floor,
            ends_slow_start=False,
        )
        retry_after = parse_retry_after(headers)
        if retry_after is not None:  # e.g. a 503 with retry-after: honour it like a 429's
            self._pause_until(now + retry_after)

    def _pause_until(self, until: float) -> None:
        """Every caller waits until then (a retry-after is about the key, not about one call)."""
        if until > self._paused_until:
            self._paused_until = until
            self._pacer.hold_until(until)

    # ---- introspection --------------------------------------------------------------------------

    def stats(self) -> LimiterStats:
        now = self._clock()
        return LimiterStats(
            in_flight=self._in_flight,
            waiting=sum(1 for _, waiter in self._waiters if not waiter.done()),
            concurrency_limit=self._window.slots,
            admitted_per_second=self._admitted.rate(now),
            calls=self._requests_sent,
            rate_limited=self._rate_limited,
            errors=self._errors,
            paused_until=self._paused_until if self._paused_until > now else None,
            paced_rate=self._pacer.rate,
            server_refill_rate=self._server_requests.refill_rate
            if self._server_requests.is_active(now)
            else None,
        )
