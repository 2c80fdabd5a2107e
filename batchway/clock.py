"""Wall-clock helpers (API and activities only: workflows use `workflow.now()`)."""

from __future__ import annotations

import time


def now() -> int:
    return int(time.time())


def now_ns() -> int:
    return time.time_ns()
