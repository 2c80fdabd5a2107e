"""Serving the simulator as a process: `run_simulator` (used by `batchway simulate`)."""

import uvicorn

from batchway.simulator.app import create_simulator_app
from batchway.simulator.config import SimulatorConfig


def run_simulator(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve the simulator until interrupted (blocking)."""
    uvicorn.run(create_simulator_app(config), host=host, port=port)
