from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.simulator.helpers import RunningSimulator, simulator_factory


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RunningSimulator]]:
    """Factory: `start(lines_per_second=..., ...)` runs a simulator with fast test defaults."""
    with simulator_factory(tmp_path) as start:
        yield start
