"""`RateMeter`: events per second over the last few seconds, O(1) per event."""

from __future__ import annotations

import math


class RateMeter:
    """Events counted in `slots` time buckets covering the last `window` seconds."""

    def __init__(self, window: float = 5.0, slots: int = 20) -> None:
        self.window = window
        self._width = window / slots
        self._counts = [0.0] * slots
        self._slot = 0  # absolute index (time // width) of the newest bucket
        self._started_at: float | None = None

    def add(self, now: float, amount: float = 1.0) -> None:
        self._advance(now)
        self._counts[self._slot % len(self._counts)] += amount

    def rate(self, now: float) -> float:
        """Events per second over the window (or since the first event, for a young meter)."""
        if self._started_at is None:
            return 0.0
        total = self.count(now)
        oldest_start = (
            self._slot - len(self._counts) + 1
        ) * self._width  # the newest bucket is still filling
        span = max(self._width, now - max(oldest_start, self._started_at))
        return total / span

    def count(self, now: float) -> float:
        """Events in the window."""
        if self._started_at is None:
            return 0.0
        self._advance(now)
        return sum(self._counts)

    def span(self, now: float) -> float:
        """Seconds the window covers (less than `window` for a young meter)."""
        return 0.0 if self._started_at is None else min(self.window, now - self._started_at)

    def _advance(self, now: float) -> None:
        slot = math.floor(now / self._width)
        if self._started_at is None:
            self._started_at, self._slot = now, slot
            return
        if slot <= self._slot:
            return
        slots = len(self._counts)
        for absolute in range(self._slot + 1, min(slot, self._slot + slots) + 1):
            self._counts[absolute % slots] = 0.0
        self._slot = slot
