"""A whole batchway stack as separate processes, for the benchmarks.

Temporal dev server, simulated OpenAI upstream, `batchway worker` and `batchway api`, each its own OS
process (the API a single uvicorn worker), all under one temporary directory. `running_stack()` stops
every one of them on exit, also on Ctrl-C, SIGTERM and errors. `RssSampler` records the peak RSS of
processes (children included) from a thread. `throwaway_database()` creates a PostgreSQL database for one
run and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import openai
import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from batchway.devstack import ensure_dev_tenant
from batchway.servers import free_port, start_temporal_dev_server
from batchway.settings import Settings

SIMULATOR_KEY = "sim-bench-key"
BIN = Path(sys.executable).parent
MIB = 1024 * 1024


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `with running_stack(...)` cleans up on it too."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def bench_run(name: str, keep: bool) -> Iterator[Path]:
    """One bench run: SIGTERM handled as Ctrl-C, a work dir (removed at the end unless `keep`), the
    machine printed for the record. Ctrl-C exits 130, once every process the run started was stopped."""
    raise_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix=f"batchway-bench-{name}-"))
    print(f"machine: {machine()}\nwork dir: {work}", flush=True)
    try:
        yield work
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    """The machine, its load and the code under test, for the record."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only git: never touch the index

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
        return run.stdout.strip()

    changed = len(git("status", "--porcelain", "--untracked-files=no").splitlines())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}, Linux {platform.release()}, load average {load}\n"
        f"code: commit {git('rev-parse', '--short', 'HEAD') or '?'}"
        + (f" plus {changed} uncommitted changed files" if changed else "")
    )


@dataclass
class Stack:
    root: Path
    data_dir: Path
    api_port: int
    api_url: str  # http://127.0.0.1:{api_port}/v1
    api_key: str
    temporal_address: str
    task_queue: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    simulator_url: str = ""  # http://127.0.0.1:{port}, for its `/_simulator/...` hooks
    database_url: str = ""  # what the worker and the API use

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.api_url, api_key=self.api_key, max_retries=0, **kwargs)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {self.log(name)}")

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


def _stop(proc: subprocess.Popen[bytes], own_group: bool, timeout: float = 10.0) -> None:
    """SIGTERM (the whole process group if it has its own), then SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if own_group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(5)


def _log_tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _wait_listening(proc: subprocess.Popen[bytes], name: str, port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{_log_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout}s:\n{_log_tail(log)}")


async def _wait_for_pollers(address: str, task_queue: str, workers: list[subprocess.Popen[bytes]]) -> None:
    """Workers have no port: wait until each polls both the workflow and the activity task queue."""
    client = await Client.connect(address)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with code {worker.returncode}")
        seen = []
        for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=kind
                )
            )
            seen.append(len({poller.identity for poller in response.pollers}) >= len(workers))
        if all(seen):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the workers never polled their task queue")


def worker_names(workers: int) -> list[str]:
    return ["worker", *(f"worker-{n}" for n in range(2, workers + 1))]


@contextlib.contextmanager
def running_stack(
    root: Path,
    *,
    lines_per_second: float = 200.0,
    poll_min_seconds: float | None = 0.5,
    poll_max_seconds: float | None = 2.0,
    database_url: str | None = None,
    settings_env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[Stack]:
    """Start Temporal, the simulator, the worker and the API under `root`; stop them all on exit.

    A poll interval of None leaves its `BATCHWAY_POLL_*` variable unset, so the worker polls at the code's
    own (production) default. `database_url` None is a SQLite file in the data dir. Either way the URL is
    passed to the children explicitly, so they and the tenant set up here agree on the database even when
    the code under test names its default file differently (an older checkout). `settings_env` adds
    `BATCHWAY_*` variables for every process. `workers` worker processes are named worker, worker-2, ...
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    data_dir = root / "data"
    data_dir.mkdir(exist_ok=True)
    temporal_port, sim_port, api_port = free_port(), free_port(), free_port()
    stack = Stack(
        root=root,
        data_dir=data_dir,
        api_port=api_port,
        api_url=f"http://127.0.0.1:{api_port}/v1",
        api_key="",
        temporal_address=f"127.0.0.1:{temporal_port}",
        task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        simulator_url=f"http://127.0.0.1:{sim_port}",
        database_url=database_url or f"sqlite:///{data_dir / 'batchway.db'}",
    )
    # Only our settings reach the children: no inherited BATCHWAY_* and no stray .env (cwd is root).
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHWAY_")}
    env.update(
        BATCHWAY_DATA_DIR=str(data_dir),
        BATCHWAY_TEMPORAL_ADDRESS=stack.temporal_address,
        BATCHWAY_TASK_QUEUE=stack.task_queue,
        BATCHWAY_API_PORT=str(api_port),
        BATCHWAY_DATABASE_URL=stack.database_url,
        PYTHONUNBUFFERED="1",
    )
    if poll_min_seconds is not None:
        env["BATCHWAY_POLL_INTERVAL_MIN_SECONDS"] = str(poll_min_seconds)
    if poll_max_seconds is not None:
        env["BATCHWAY_POLL_INTERVAL_MAX_SECONDS"] = str(poll_max_seconds)
    env.update(settings_env or {})  # e.g. a worker setting under comparison

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(stack.log(name), "wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "batchway"), *args],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches only the bench, which then stops these in order
            )
        stack.processes[name] = proc
        return proc

    try:
        temporal = start_temporal_dev_server(
            port=temporal_port,
            ui_port=free_port(),
            db_file=root / "temporal.db",
            namespace="default",
        )
        stack.processes["temporal"] = temporal  # in our process group: Ctrl-C reaches it too

        upstream_url = f"http://127.0.0.1:{sim_port}/v1"
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            database_url=stack.database_url,
        )
        stack.api_key = ensure_dev_tenant(settings, upstream_url, SIMULATOR_KEY)

        sim = spawn(
            "simulator",
            "simulate",
            "--port",
            str(sim_port),
            "--data-dir",
            str(root / "simulator"),
            "--api-key",
            SIMULATOR_KEY,
            "--lines-per-second",
            str(lines_per_second),
        )
        worker_procs = [spawn(name, "worker") for name in worker_names(workers)]
        api = spawn("api", "api", "--port", str(api_port))
        _wait_listening(sim, "simulator", sim_port, stack.log("simulator"), 30)
        _wait_listening(api, "api", api_port, stack.log("api"), 30)
        asyncio.run(_wait_for_pollers(stack.temporal_address, stack.task_queue, worker_procs))
        yield stack
    finally:
        # API first (no new work), then the worker, the upstream and Temporal last.
        for name in ("api", *worker_names(workers), "simulator", "temporal"):
            if name in stack.processes:
                _stop(stack.processes[name], own_group=name != "temporal")


@contextlib.contextmanager
def throwaway_database(url: str) -> Iterator[str]:
    """Create the PostgreSQL database named in `url` and drop it afterwards; refuses an existing one, so
    the bench never drops a database it did not create."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"--database-url must name a database ([a-z0-9_]), got {name!r}")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            raise SystemExit(f"database {name} already exists; name a new one (this bench drops it after)")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process and its live children (and of children it reaped)."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                t = child.cpu_times()
                total += t.user + t.system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (every process, not only ours)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class RssSampler:
    """Samples the RSS of named processes (each with its children) every `interval` seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval = interval
        self.first: dict[str, int] = {}
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    @staticmethod
    def rss_tree(proc: psutil.Process) -> int:
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += p.memory_info().rss
        return total

    def sample(self) -> None:
        for name, proc in self.processes.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                rss = self.rss_tree(proc)
                self.first.setdefault(name, rss)
                self.peak[name] = max(self.peak[name], rss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def high_water_mark(self, name: str) -> int | None:
        """The kernel's peak RSS of the process over its whole life (VmHWM), a cross-check on sampling."""
        try:
            status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None
