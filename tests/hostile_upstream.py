"""The hostile OpenAI upstream under the name the test plan uses; the code lives in `tests/hostile/`."""

from tests.hostile import (
    ALL_CORRUPTIONS,
    ROUTES,
    UNREADABLE_CORRUPTIONS,
    VICTIM_CORRUPTIONS,
    Faults,
    HostileUpstream,
    Timing,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "ROUTES",
    "UNREADABLE_CORRUPTIONS",
    "VICTIM_CORRUPTIONS",
    "Faults",
    "HostileUpstream",
    "Timing",
]
