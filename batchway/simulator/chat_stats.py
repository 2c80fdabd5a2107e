"""Counters of the synchronous API for tests: what arrived, what it was answered, what repeated.

A request body's fingerprint is the sha256 of its JSON re-serialized with sorted keys and no spaces
(`orjson.dumps(body, option=orjson.OPT_SORT_KEYS)`), so a test can count re-sends of one line
whatever the client's key order or whitespace.
"""

import hashlib
from array import array
from collections import Counter
from typing import Any

import orjson

from batchway.simulator.config import CHAT_ENDPOINTS, FAULT_KINDS, FaultKind
from batchway.simulator.rate_limits import LimitKind


def body_fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def max_in_window(times: array, window: float) -> int:
    """Most of the sorted `times` inside any half-open window [t, t + window)."""
    best = start = 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class ChatStats:
    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Every counter back to zero, except the calls still in flight."""
        self.calls: Counter[str] = Counter()
        self.answered: Counter[int] = Counter()  # by HTTP status actually sent
        self.ok = 0  # well-formed 200 answers
        self.rate_limited: Counter[str] = Counter()  # requests, tokens, concurrency
        self.faults: Counter[str] = Counter()
        self.max_in_flight = self.in_flight
        self.sends_by_body: Counter[str] = Counter()
        self.oks_by_body: Counter[str] = Counter()
        # Monotonic times, appended in order; an array keeps a million calls at 8 bytes each.
        self.admitted_at = array("d")
        self.ok_at = array("d")

    def call(self, endpoint: str) -> None:
        self.calls[endpoint] += 1

    def body(self, fingerprint: str) -> None:
        self.sends_by_body[fingerprint] += 1

    def answer(self, status: int) -> None:
        self.answered[status] += 1

    def answered_ok(self, fingerprint: str, now: float) -> None:
        self.ok += 1
        self.oks_by_body[fingerprint] += 1
        self.ok_at.append(now)

    def limited(self, kind: LimitKind | str) -> None:
        self.rate_limited[kind] += 1

    def fault(self, kind: FaultKind) -> None:
        self.faults[kind] += 1

    def enter(self, now: float) -> None:
        """An admitted call starts; it stays in flight until `leave`."""
        self.admitted_at.append(now)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1

    def snapshot(self, window: float, by_body: bool = False) -> dict[str, Any]:
        sends = sum(self.sends_by_body.values())
        snapshot: dict[str, Any] = {
            "calls": {"total": sum(self.calls.values()), **{e: self.calls[e] for e in CHAT_ENDPOINTS}},
            "answered": {str(status): n for status, n in sorted(self.answered.items())},
            "ok": self.ok,
            "rate_limited": {k: self.rate_limited[k] for k in ("requests", "tokens", "concurrency")},
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS},
            "admitted": len(self.admitted_at),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "bodies": {
                "distinct": len(self.sends_by_body),
                "sends": sends,
                "repeats": sends - len(self.sends_by_body),
                "max_sends": max(self.sends_by_body.values(), default=0),
                "ok_repeats": sum(n - 1 for n in self.oks_by_body.values()),
            },
            "window": {
                "seconds": window,
                "max_admitted": max_in_window(self.admitted_at, window),
                "max_ok": max_in_window(self.ok_at, window),
            },
        }
        if by_body:
            snapshot["by_body"] = {
                fp: {"sends": n, "ok": self.oks_by_body[fp]} for fp, n in self.sends_by_body.items()
            }
        return snapshot
