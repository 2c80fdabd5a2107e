"""How many calls to one upstream may be in flight: a TCP-style congestion window (AIMD)."""

from __future__ import annotations

import math


class ConcurrencyWindow:
    """The number of calls allowed in flight, grown while calls succeed and cut on congestion.

    - Slow start: +1 per success (the window doubles every round trip) until the first congestion
      signal, so an unlimited upstream (vLLM, a big provider) reaches the cap within a few round trips.
      It also stays in slow start while the upstream's headers show budget for another full window.
    - After a congestion signal (429, overload, timeout): +1 per round trip (+1/limit per success).
    - A cut multiplies the window by `factor` once per episode: answers to calls sent before the last
      cut describe the same congestion (they were already on the wire) and do not cut again. Without
      this a single burst of in-flight 429s would collapse the window to its floor.
    - It only grows while it is the bottleneck (it was full when the call was admitted); a window that
      nobody fills says nothing about the upstream.
    """

    def __init__(self, *, initial: int, cap: int, floor: int = 1) -> None:
        self.cap = cap
        self.floor = min(floor, cap)
        self.limit = float(min(max(initial, self.floor), cap))
        self.slow_start_until = float(cap)  # TCP's ssthresh
        self._cut_at = -math.inf

    @property
    def slots(self) -> int:
        return int(self.limit)

    def on_success(self, *, was_full: bool, room_for_another_window: bool) -> None:
        if not was_full or self.limit >= self.cap:
            return
        if room_for_another_window or self.limit < self.slow_start_until:
            self.limit += 1.0
        else:
            self.limit += 1.0 / self.limit
        self.limit = min(self.limit, float(self.cap))

    def on_congestion(
        self,
        *,
        sent_at: float,
        now: float,
        factor: float,
        floor: int | None = None,
        ends_slow_start: bool = True,
    ) -> bool:
        """Cut the window (not below `floor`) for a congestion signal about a call sent at `sent_at`.

        False if that call belongs to an episode already answered by a cut. Weak signals (a timeout)
        pass `ends_slow_start=False`, so one stray error does not make an unlimited upstream's growth
        linear.
        """
        if sent_at <= self._cut_at:
            return False
        lowest = float(self.floor if floor is None else max(floor, self.floor))
        self.limit = max(min(self.limit, lowest), self.limit * factor)
        if ends_slow_start:
            self.slow_start_until = self.limit
        self._cut_at = now
        return True
