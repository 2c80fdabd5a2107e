"""Which admitted call of the synchronous API gets which injected fault, deterministically.

Calls are numbered 1, 2, 3, ... in the order they are admitted. `chat_<kind>_every = N` picks calls
N, 2N, ...; `chat_<kind>_rate` picks a fraction of calls through one draw per call from a RNG seeded
with `chat_fault_seed`, the kinds splitting [0, 1) in `FAULT_KINDS` order. So the k-th admitted call
always gets the same fault for the same settings, whatever order concurrent calls arrive in.
Numbering and the RNG start again whenever a fault setting changes (and on `restart`).
"""

import random

from batchway.simulator.config import FAULT_KINDS, FaultKind, SimulatorConfig


def _fault_settings(config: SimulatorConfig) -> tuple[object, ...]:
    schedules = (
        (getattr(config, f"chat_{kind}_every"), getattr(config, f"chat_{kind}_rate")) for kind in FAULT_KINDS
    )
    return (config.chat_fault_seed, *schedules)


class FaultPlan:
    def __init__(self) -> None:
        self._settings: tuple[object, ...] | None = None
        self._calls = 0
        self._rng = random.Random(0)

    def restart(self) -> None:
        self._settings = None

    def next_fault(self, config: SimulatorConfig) -> FaultKind | None:
        """The fault for the next admitted call, or None for a normal answer."""
        settings = _fault_settings(config)
        if settings != self._settings:
            self._settings = settings
            self._calls = 0
            self._rng = random.Random(config.chat_fault_seed)
        self._calls += 1
        draw = self._rng.random()  # drawn for every call, so one kind's rate never shifts another's
        for kind in FAULT_KINDS:
            every = getattr(config, f"chat_{kind}_every")
            if every is not None and self._calls % every == 0:
                return kind
        low = 0.0
        for kind in FAULT_KINDS:
            high = low + getattr(config, f"chat_{kind}_rate")
            if low <= draw < high:
                return kind
            low = high
        return None
