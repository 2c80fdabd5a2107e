"""One place for configuration: every knob is a `BATCHWAY_*` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATCHWAY_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".batchway")
    # SQLite file in the data dir unless set; `postgresql+psycopg://...` works too.
    database_url: str | None = None
    # Local folder in the data dir unless set (a `file://` path or a plain path).
    blob_url: str | None = None

    # Master key(s) that encrypt upstream keys and webhook secrets at rest (batchway.secret_box).
    secret_key: SecretStr | None = None
    # Signs the dashboard's session cookies (comma separated: the first signs, every one verifies). Unset:
    # a key file in the data dir (session.key, 0600), created on first use.
    session_secret: SecretStr | None = None

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "batchway"
    # Secured clusters and Temporal Cloud: mTLS (client certificate and key, optionally the server's CA
    # and name), or an API key (which implies TLS); `temporal_tls` turns on TLS with the system's CAs.
    temporal_tls: bool = False
    temporal_tls_cert: str | None = None
    temporal_tls_key: str | None = None
    temporal_tls_ca: str | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    # How long a stopping process lets work in flight finish (SIGTERM): a worker's running activities
    # (the rest are handed back to Temporal, which gives them to another worker), the API's requests.
    shutdown_grace_seconds: float = 30.0
    # Worker capacity (see README, "Worker tuning").
    worker_max_concurrent_activities: int = 200
    worker_max_concurrent_workflow_tasks: int = 100
    worker_max_cached_workflows: int = 2000
    # Let the SDK scale its task pollers on the server's backlog hints (up to 100 each) instead of five
    # fixed ones, of which only one serves new batches' first workflow task.
    worker_autoscale_pollers: bool = False

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The worker's health server (/healthz, /readyz, /metrics); off unless a port is set.
    worker_health_host: str = "127.0.0.1"
    worker_health_port: int | None = None

    # JSON request bodies (batch create...) at most; uploads have their own limit below.
    max_json_body_bytes: int = 1024 * 1024
    max_input_bytes: int = 200 * 1024 * 1024
    max_lines: int = 50_000
    # One request line at most (images in base64 make lines big); bounds memory while scanning.
    max_line_bytes: int = 16 * 1024 * 1024

    # Polling an upstream batch backs off from min to max.
    poll_interval_min_seconds: float = 10.0
    poll_interval_max_seconds: float = 300.0
    # The batch's completion window ("24h") and how long past it batchway waits before it
    # cancels an upstream that overruns and ends the batch `expired`.
    completion_window_seconds: int = 24 * 3600
    deadline_grace_seconds: int = 3600
    # After batchway asks an upstream to cancel (a cancel request, or the deadline), how long it waits for
    # the upstream to stop before it ends the batch with whatever results it can still download.
    cancel_grace_seconds: float = 900.0
    # How often the sweeper looks for batches whose workflow was terminated in Temporal.
    sweep_interval_seconds: float = 60.0
    # Continue-as-new after this many polls in one run (0: only when Temporal suggests it). Long batches
    # stay far below the history limits either way; a small value exercises the carry-over in tests.
    polls_per_run: int = 0
    # Timeout of one upstream HTTP call; kept below the activities' start-to-close timeout.
    upstream_timeout_seconds: float = 120.0

    # Fan-out (upstreams with no batch API): lines per chunk activity, chunks of one batch in flight at
    # once, how long in-flight calls may finish after a cancel or the deadline, and this worker's share of
    # a provider's explicit rpm/tpm when several workers run fan-outs (e.g. 0.5 with two workers).
    fanout_chunk_lines: int = 250
    fanout_chunks_in_flight: int = 4
    fanout_stop_grace_seconds: float = 5.0
    fanout_worker_share: float = 1.0

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'batchway.db').resolve()}"

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or str((self.data_dir / "blobs").resolve())


@lru_cache
def get_settings() -> Settings:
    return Settings()
