"""The clock every simulated batch runs on: requests finish one after another at a fixed rate.

Progress is a fractional count of finished requests, advanced piecewise from `since` so a config
change (a new rate, a stall) applies from the moment it is made and never rewrites the past.
"""

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Run:
    progress: float  # requests done, fractional
    at: float  # when `progress` was reached: `now`, or the moment the run finished or hit the deadline
    outcome: Literal["running", "finished", "deadline"]


def run_requests(total: int, progress: float, since: float, rate: float, deadline: float, now: float) -> Run:
    """Advance from `progress` at `since` towards `total` at `rate` per second, stopping at `now` or
    at `deadline` (math.inf for none), whichever comes first. A rate of 0 never finishes."""
    finish_at = since + (total - progress) / rate if rate > 0 else math.inf
    deadline = max(deadline, since)
    if finish_at <= now and finish_at <= deadline:
        return Run(float(total), finish_at, "finished")
    if deadline <= now:
        return Run(progress + (deadline - since) * rate, deadline, "deadline")
    return Run(progress + (now - since) * rate, now, "running")


def requests_done(progress: float, total: int) -> int:
    # The epsilon absorbs float error, e.g. 0.1 s * 30 lines/s landing on 2.9999999.
    return min(total, int(math.floor(progress + 1e-9)))
