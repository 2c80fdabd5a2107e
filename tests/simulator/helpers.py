"""Running a simulator over real HTTP for tests, and talking to it with the official SDKs."""

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import uvicorn
from openai import OpenAI

from batchway.simulator import SimulatorConfig, create_simulator_app

API_KEY = "sk-sim-test-key"

# Fast defaults for tests; each test overrides what it exercises.
FAST_SETTINGS: dict[str, Any] = {
    "api_key": API_KEY,
    "validate_seconds": 0.05,
    "lines_per_second": 1000.0,
    "cancel_seconds": 0.1,
}


@dataclass
class RunningSimulator:
    base_url: str  # http://127.0.0.1:<port>, without /v1

    def client(self, api_key: str = API_KEY) -> OpenAI:
        return OpenAI(base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0)

    def anthropic(self, api_key: str = API_KEY, **kwargs: Any) -> anthropic.Anthropic:
        # The SDK appends /v1/messages/batches itself.
        return anthropic.Anthropic(base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs)

    def set_config(self, **changes: Any) -> httpx.Response:
        return httpx.post(f"{self.base_url}/_simulator/config", json=changes)

    def all_batches(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base_url}/_simulator/batches").json()["data"]

    def calls(self) -> dict[str, dict[str, int]]:
        return httpx.get(f"{self.base_url}/_simulator/calls").json()


@contextlib.contextmanager
def running_simulator(config: SimulatorConfig) -> Iterator[RunningSimulator]:
    """Serve the simulator from a background thread on a free loopback port."""
    # Binding the socket ourselves avoids the pick-a-port-then-bind race.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_simulator_app(config), log_level="warning", lifespan="off"))
    # uvicorn only installs signal handlers on the main thread, so a worker thread is safe.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("simulator did not start")
        time.sleep(0.01)
    try:
        yield RunningSimulator(base_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def simulator_factory(tmp_path: Path) -> Iterator[Callable[..., RunningSimulator]]:
    """`start(lines_per_second=..., ...)` runs a simulator with fast test defaults; all stop on exit."""
    counter = itertools.count()
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> RunningSimulator:
            settings = {"data_dir": tmp_path / f"sim{next(counter)}", **FAST_SETTINGS, **overrides}
            return stack.enter_context(running_simulator(SimulatorConfig(**settings)))

        yield start


def restart_config(data_dir: Path, **overrides: Any) -> SimulatorConfig:
    """Settings for tests that stop a simulator and start another on the same data_dir."""
    return SimulatorConfig(**{"data_dir": data_dir, **FAST_SETTINGS, "lines_per_second": 20.0, **overrides})
