"""`RatePacer`: the upstream's token bucket as learnt from its 429s, for limits no header describes."""

from __future__ import annotations

import math

from batchway.upstreams.fanout.meter import RateMeter

# Successes since the last episode measure the upstream's rate only if that episode is this recent
# (we kept sending, over its limit, since then); after a longer gap we may have been idle.
RECENT_EPISODE_SECONDS = 10.0
# The upward probe doubles its speed for every this many seconds of pacing without a 429 (up to 16x).
CALM_DOUBLING_SECONDS = 10.0
MAX_CALM_SECONDS = 40.0


class RatePacer:
    """A rate and a burst, learnt from 429s alone: for an upstream that sends no budget headers, or a
    limit its headers do not cover. Unarmed, it limits nothing; the first 429 arms it.

    Rate (AIMD). Each success the rate held back raises it by `growth` req/s, that is by `growth`
    (relative) per second: a slow probe upward, which doubles its speed for every 10 s of pacing
    without a 429 (so an underestimate does not last). A 429 that opens a new episode cuts it:
    - the first one to just under what we were sending at. That 429 usually ends a burst (the
      upstream's bucket just ran dry), so this is far too high; but the calls already on the wire
      (`_Drain`) soon show the truth, since with its bucket empty the upstream's successes per second
      are its refill rate. The rate drops to that before the pause ends and a second wave goes out;
    - later ones by `decrease`, or, if less, to the successes per second since the previous episode
      (at most halving), so a rate still far too high converges in a few episodes.

    Burst. What the upstream let through before its first 429, beyond its refill, is the size of its
    bucket. Our copy of that bucket fills while we send slower than the rate (say, idle between two
    batches) and is spent at once, as the upstream's own bucket allows. A 429 empties it; a 429 on a
    call sent on saved credit halves the burst (the bucket is smaller than we thought, or shared).
    """

    def __init__(self, *, decrease: float = 0.9, growth: float = 0.02, min_rate: float = 0.05) -> None:
        self.rate: float | None = None
        self.burst = 1.0
        self.decrease, self.growth, self.min_rate = decrease, growth, min_rate
        self.episode_at = -math.inf  # when the current 429 episode opened
        self._credit = 0.0  # calls we may send at once, as of `_credit_at`
        self._credit_at = 0.0
        self._last_second = RateMeter(window=1.0, slots=10)  # successes
        self._last_minute = RateMeter(window=60.0, slots=60)  # successes
        self._drain = _Drain(opened_by_sent_at=-math.inf, in_flight=0)
        self._accepted = 0  # successes since the episode opened
        self._calm_seconds = 0.0  # of pacing (at the rate) since the episode opened
        self._burst_evidence: tuple[float, float] | None = None

    # ---- admission -------------------------------------------------------------------------------

    def delay(self, now: float) -> float:
        if self.rate is None:
            return 0.0
        self._learn_from_drain(self._drain.estimate_before(now), now)  # answers that came at one instant
        return max(0.0, (1.0 - self.credit(now)) / self.rate)

    def credit(self, now: float) -> float:
        """Calls we may send at once now."""
        if self.rate is None:
            return math.inf
        if now > self._credit_at:  # not within a pause (see `hold_until`)
            self._credit = min(self.burst, self._credit + (now - self._credit_at) * self.rate)
            self._credit_at = now
        return self._credit

    def on_admit(self, now: float) -> bool:
        """Spend one call of credit; True if the rate is what held this call back (no saved credit)."""
        if self.rate is None:
            return False
        credit = self.credit(now)
        self._credit = credit - 1.0
        return credit < 2.0

    def hold_until(self, until: float) -> None:
        """A shared pause: no credit builds up before it ends. The upstream refills meanwhile, by an
        amount we only know as well as its rate; whatever it lets through anyway is not lost, only later."""
        if self.rate is not None:
            self._credit, self._credit_at = 0.0, max(self._credit_at, until)

    # ---- feedback --------------------------------------------------------------------------------

    def on_answer(self, *, accepted: bool, refused: bool, sent_at: float, paced: bool, now: float) -> None:
        """Any answer: `accepted` (2xx), `refused` (429), or neither (an error says nothing here)."""
        if accepted:
            self._accepted += 1
            self._last_second.add(now)
            self._last_minute.add(now)
            if paced and self.rate is not None:
                # The longer the rate holds us back without a 429, the faster it probes upward, so an
                # underestimate does not last. Calm is counted in paced calls, not in seconds: time
                # spent idle or spending saved credit proves nothing.
                self._calm_seconds += 1.0 / self.rate
                self.rate += self.growth * 2.0 ** (
                    min(self._calm_seconds, MAX_CALM_SECONDS) / CALM_DOUBLING_SECONDS
                )
        if sent_at <= self.episode_at and (accepted or refused):
            self._learn_from_drain(self._drain.add(accepted, sent_at, now), now)

    def open_episode(
        self, now: float, *, sent_at: float, sent_on_credit: bool, in_flight: int, rtt: float
    ) -> None:
        """A 429 that is news (not one more answer to calls sent before the last cut)."""
        if self.rate is None:
            if self._last_second.count(now) < 2:
                return  # nothing to learn a rate from yet (the key may be out of budget): pauses only
            # What we were sending at: still growing in slow start, so the last second's successes
            # alone would understate it, and a 429 from a concurrency limit would leave us far below.
            sending = in_flight / rtt if rtt > 0 else 0.0
            self.rate = self.decrease * max(self._last_second.rate(now), sending)
        else:
            if sent_on_credit:
                self.burst = max(1.0, self.burst / 2)
            rate = self.decrease * self.rate
            since = now - self.episode_at
            if since <= RECENT_EPISODE_SECONDS:
                # Successes per second since the last episode, pauses included (the upstream refilled
                # during them, and we spent that before it refused again). An upper bound, like the
                # drain's: as if the next success came now. (Not after a long gap: it may be idle.)
                delivered = (self._accepted + 1) / since
                rate = min(rate, max(0.5 * self.rate, delivered))
            self.rate = max(self.min_rate, rate)
        # Until the burst is known, every episode of the discovery says as much as the first.
        if self.burst <= 1.0:
            self._burst_evidence = (self._last_minute.count(now), self._last_minute.span(now))
            self._learn_burst()
        else:
            self._burst_evidence = None
        self._empty(now)
        self.episode_at = now
        self._drain = _Drain(opened_by_sent_at=sent_at, in_flight=in_flight)
        self._accepted, self._calm_seconds = 0, 0.0

    def _learn_from_drain(self, delivered: float | None, now: float) -> None:
        if delivered is not None and self.rate is not None and delivered < 0.7 * self.rate:
            self.rate = max(self.min_rate, delivered)
            self._learn_burst()
            self._empty(now)

    def _learn_burst(self) -> None:
        """The last minute's successes were the upstream's bucket plus its refill over that span, if
        the bucket was full when the span began (an underestimate otherwise: safe)."""
        if self._burst_evidence is not None and self.rate is not None:
            successes, span = self._burst_evidence
            self.burst = max(1.0, successes - self.rate * span)

    def _empty(self, now: float) -> None:
        """The upstream's bucket is empty: so is our copy."""
        self._credit, self._credit_at = 0.0, max(self._credit_at, now)


class _Drain:
    """The answers to the calls already on the wire when an episode opened.

    Those sent after the call whose 429 opened the episode, up to the last of them refused, found the
    upstream's bucket empty: the successes among them are what it refilled while they were being
    sent, and successes per second of sending is its rate. Counting every call not answered yet (and
    the next success) as successes makes that an upper bound, however the answers are reordered,
    which tightens as they come in. Calls sent earlier or at the same instant may have found what was
    left in the bucket, and calls that all succeeded only show that we sent slower than it refilled:
    neither says anything. Answers that arrive at one instant are evaluated together, once the clock
    has moved on (their order within the instant means nothing).
    """

    def __init__(self, *, opened_by_sent_at: float, in_flight: int) -> None:
        self.first_sent_at, self.in_flight = opened_by_sent_at, in_flight
        self._last_refused_sent_at = opened_by_sent_at
        self._answers = self._successes = self._checked = 0
        self._last_answer_at = -math.inf

    def add(self, ok: bool, sent_at: float, now: float) -> float | None:
        estimate = self.estimate_before(now)
        self._last_answer_at = now
        self._answers += 1
        if sent_at > self.first_sent_at:
            if ok:
                self._successes += 1
            else:
                self._last_refused_sent_at = max(self._last_refused_sent_at, sent_at)
        return estimate

    def estimate_before(self, now: float) -> float | None:
        """The rate shown by the answers that came before `now`, if not evaluated yet and enough."""
        if now <= self._last_answer_at or self._answers == self._checked:
            return None
        self._checked = self._answers
        if self._answers < 8 or self.in_flight < 8:
            return None  # too little evidence
        span = self._last_refused_sent_at - self.first_sent_at
        if span <= 0:
            return None
        # Any call still unanswered may have been sent within the span, and succeeded.
        possible_successes = self._successes + max(0, self.in_flight - self._answers) + 1
        return possible_successes / span
