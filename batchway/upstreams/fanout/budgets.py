"""Budgets an `UpstreamLimiter` checks before each call. Plain objects driven by the limiter (no clock
or I/O of their own): each answers "how long must a call of `units` wait from `now`?".

- `ServerBudget`: the upstream's own budget for one dimension (requests or tokens), modelled from its
  `x-ratelimit-*` headers as a token bucket.
- `SlidingWindowCap`: an operator's explicit rpm/tpm, enforced exactly on our side.
- `TokenEstimates`: what a call will cost in tokens before its answer says.
(`pacer.RatePacer`, the rate learnt from 429s, is the third kind of budget.)
"""

from __future__ import annotations

import math
from collections import deque

# Stop trusting a header budget that no answer has refreshed for this long (the upstream stopped
# sending the headers, or we paused for a long retry-after): fall back to what 429s teach us.
STALE_AFTER_SECONDS = 60.0
# Keep this much refill in hand: the server counts a call when it arrives, a little after we send it,
# and that delay varies. Without it an exact model sends each call just as the token appears, and
# network jitter turns some into 429s. It costs a fraction of a call, once.
SAFETY_SECONDS = 0.02
# When an upstream gives `limit` and `remaining` but no `reset`, assume OpenAI's per-minute window.
DEFAULT_WINDOW_SECONDS = 60.0


class ServerBudget:
    """The upstream's budget for one dimension, from its `limit`/`remaining`/`reset` headers.

    Model: a token bucket of `limit` units refilling at `refill_rate` per second, which is exactly what
    OpenAI-style headers describe (`reset` = time until the bucket is full again, so
    refill_rate = (limit - remaining) / reset).

    Calls in flight are not in `remaining` yet, so the budget is anchored to one answered call: the
    server had `remaining` units left right after it counted that call (at about the time we sent it),
    and every unit we sent after that call is assumed spent. So, `now`:

        available = min(limit, remaining + refill_rate * (now - anchor_sent_at)) - units_sent_since_anchor

    A newer answer (of a call sent later) re-anchors the model, which corrects any drift in one round
    trip. The rate estimate is a ratio of decayed sums, so answers with a large deficit (whose
    integer/rounded headers are relatively precise) weigh most.
    """

    def __init__(self) -> None:
        self.limit: float | None = None
        self.refill_rate: float | None = None
        self._remaining = 0.0
        self._anchor_sent_at = -math.inf
        self._anchor_units = -1.0  # our cumulative units sent, up to and including the anchoring call
        self._observed_at = -math.inf
        self._full_at: float | None = None  # when `limit` is unknown: the reset moment, if given
        self._deficit_sum = 0.0
        self._reset_sum = 0.0

    def is_active(self, now: float) -> bool:
        """Has a recent answer told us this budget?"""
        return now - self._observed_at <= STALE_AFTER_SECONDS

    def can_pace(self, now: float) -> bool:
        """Can it tell when the budget comes back (it knows the refill rate or the reset moment)?"""
        return self.is_active(now) and (self.refill_rate is not None or self._full_at is not None)

    def observe(
        self,
        limit: int | None,
        remaining: int | None,
        reset: float | None,
        *,
        sent_at: float,
        units_through: float,
        now: float,
    ) -> None:
        """Learn from the headers of an answer to a call sent at `sent_at`, after which our cumulative
        units sent were `units_through`."""
        if remaining is None or (limit is None and reset is None):
            return
        if limit is not None:
            self.limit = float(limit)
            self._learn_refill_rate(limit, remaining, reset)
        if units_through < self._anchor_units:
            return  # an older call than the anchor, answered late: it knows less than we do
        self._remaining = float(remaining)
        self._anchor_sent_at = sent_at
        self._anchor_units = units_through
        self._observed_at = now
        self._full_at = sent_at + reset if limit is None and reset is not None else None

    def _learn_refill_rate(self, limit: int, remaining: int, reset: float | None) -> None:
        deficit = limit - remaining
        if reset is None:
            if self.refill_rate is None:
                self.refill_rate = limit / DEFAULT_WINDOW_SECONDS
            return
        if deficit < 1 or reset <= 0:  # a full bucket (or Azure's 0) says nothing about the rate
            return
        self._deficit_sum = 0.9 * self._deficit_sum + deficit
        self._reset_sum = 0.9 * self._reset_sum + reset
        self.refill_rate = self._deficit_sum / self._reset_sum

    def available(self, now: float, units_sent: float) -> float:
        """Units the upstream would still accept now (inf when the headers told us nothing usable)."""
        if not self.is_active(now):
            return math.inf
        since_anchor = units_sent - self._anchor_units
        if self.limit is None or self.refill_rate is None:
            # Only `remaining` and `reset`: it holds until the reset, after which we know nothing.
            if self._full_at is None or now >= self._full_at:
                return math.inf
            return self._remaining - since_anchor
        refilled = self._remaining + self.refill_rate * (now - self._anchor_sent_at)
        return min(self.limit, refilled) - since_anchor

    def delay(self, units: float, now: float, units_sent: float) -> float:
        """Seconds until a call of `units` fits the budget (0 = now)."""
        available = self.available(now, units_sent)
        if available == math.inf:
            return 0.0
        # A call bigger than the whole bucket waits for a full one rather than forever.
        needed = units if self.limit is None else min(units, self.limit)
        if self.refill_rate is not None:
            needed += self.refill_rate * SAFETY_SECONDS
        if available >= needed:
            return 0.0
        if self.limit is None or self.refill_rate is None:
            return self._full_at - now if self._full_at is not None else 0.0
        # Time for the refill to cover the shortfall. Past the cap (we sent more than a whole bucket
        # since the anchor) the same formula still paces us at the refill rate, so it never deadlocks.
        shortfall = needed + (units_sent - self._anchor_units) - self._remaining
        return max(0.0, shortfall / self.refill_rate - (now - self._anchor_sent_at))


class WindowEntry:
    """One admission in a `SlidingWindowCap`'s log."""

    __slots__ = ("at", "units", "expired")

    def __init__(self, at: float, units: float) -> None:
        self.at, self.units, self.expired = at, units, False


class SlidingWindowCap:
    """At most `limit` units admitted in any `window` seconds: an operator's rpm or tpm, never exceeded.

    A log of admissions (O(1) amortized per call; O(k) only while blocked, to find when enough old
    admissions leave the window). A token bucket would let up to twice the limit through in a window.
    """

    def __init__(self, limit: float, window: float = 60.0) -> None:
        self.limit, self.window = float(limit), window
        self._log: deque[WindowEntry] = deque()
        self._in_window = 0.0

    def delay(self, units: float, now: float) -> float:
        self._expire(now)
        needed = min(units, self.limit)
        excess = self._in_window + needed - self.limit
        if excess <= 0:
            return 0.0
        freed = 0.0
        for admission in self._log:
            freed += admission.units
            if freed >= excess:
                return admission.at + self.window - now + 1e-9  # just past the edge, float-safely
        return self.window

    def admit(self, units: float, now: float) -> WindowEntry:
        admission = WindowEntry(now, units)
        self._log.append(admission)
        self._in_window += units
        return admission

    def correct(self, admission: WindowEntry, units: float) -> None:
        """Replace an estimate by the real count once known (it may then exceed the cap: estimates)."""
        if not admission.expired:
            self._in_window += units - admission.units
        admission.units = units

    def _expire(self, now: float) -> None:
        edge = now - self.window
        log = self._log
        while log and log[0].at <= edge:
            admission = log.popleft()
            admission.expired = True
            self._in_window -= admission.units


class TokenEstimates:
    """What a call will cost in tokens before its answer says, for tpm pacing.

    A caller's estimate is a floor: when calls keep using more than estimated, estimates are scaled up
    by the average ratio (never down: an over-estimate only costs a little speed). A call without an
    estimate counts as the average reported use.
    """

    def __init__(self) -> None:
        self.typical = 0.0  # average used tokens per call
        self.scale = 1.0  # average used / estimated, at least 1
        self._seen_ratio = False

    def for_call(self, estimated: int) -> float:
        return estimated * self.scale if estimated > 0 else self.typical

    def learn(self, estimated: int, used: int) -> None:
        self.typical = used if self.typical == 0 else 0.9 * self.typical + 0.1 * used
        if estimated > 0:
            ratio = used / estimated
            self.scale = max(1.0, ratio if not self._seen_ratio else 0.9 * self.scale + 0.1 * ratio)
            self._seen_ratio = True
