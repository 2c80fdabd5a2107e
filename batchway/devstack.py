"""`batchway dev`: embedded Temporal, the worker, the API (and a simulated upstream when no OpenAI key
is set) in one command. A second start on the same data dir resumes unfinished batches."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from sqlmodel import Session, select

from batchway import tenancy
from batchway.secret_box import ensure_dev_key, load_box
from batchway.servers import embedded_server, serve_until, start_temporal_dev_server, wait_for_port
from batchway.settings import Settings
from batchway.storage.db import make_engine, migrate
from batchway.storage.models import Org

DEV_ORG = "default"
DEV_PROVIDER = "openai"
DEV_FANOUT_PROVIDER = "fanout"


def ensure_dev_tenant(
    settings: Settings,
    upstream_base_url: str | None,
    upstream_key: str | None,
    fanout_base_url: str | None = None,
) -> str:
    """Create the default org and its key on first start; point its provider at the upstream (and, with
    `fanout_base_url`, a second provider `fanout` at a chat API). Returns the dev API key (kept in the
    data dir so later starts can print it again)."""
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    ensure_dev_key(settings)
    box = load_box(settings)
    key_file = settings.data_dir / "dev-api-key"
    with Session(engine) as session:
        org = session.exec(select(Org).where(Org.name == DEV_ORG)).first() or tenancy.create_org(
            session, DEV_ORG
        )
        if not key_file.exists():
            key_file.write_text(tenancy.create_api_key(session, org))
            key_file.chmod(0o600)
        tenancy.set_provider(
            session,
            org,
            DEV_PROVIDER,
            kind="openai",
            api_key=upstream_key,
            base_url=upstream_base_url,
            box=box,
        )
        if fanout_base_url:
            tenancy.set_provider(
                session,
                org,
                DEV_FANOUT_PROVIDER,
                kind="fanout",
                api_key=upstream_key,
                base_url=fanout_base_url,
                box=box,
            )
        else:  # one provider again: batches need no header
            tenancy.delete_provider(session, org.id, DEV_FANOUT_PROVIDER)
    engine.dispose()
    return key_file.read_text().strip()


async def run_dev(
    settings: Settings, *, temporal_port: int, ui_port: int, simulator_port: int, fanout: bool = False
) -> None:
    from batchway.simulator import SimulatorConfig, create_simulator_app  # the demo upstream
    from worker import run_worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Poll sooner than production defaults so a demo batch lands quickly (explicit settings win).
    dev_polling = {"poll_interval_min_seconds": 1.0, "poll_interval_max_seconds": 10.0}
    settings = settings.model_copy(
        update={k: v for k, v in dev_polling.items() if k not in settings.model_fields_set}
    )
    openai_key = os.environ.get("OPENAI_API_KEY")
    simulate = not openai_key
    simulator_url = f"http://127.0.0.1:{simulator_port}/v1"
    upstream_url = simulator_url if simulate else os.environ.get("OPENAI_BASE_URL")
    api_key = ensure_dev_tenant(
        settings, upstream_url, openai_key or "simulated", simulator_url if fanout else None
    )
    serve_simulator = simulate or fanout

    temporal = start_temporal_dev_server(
        port=temporal_port,
        ui_port=ui_port,
        db_file=settings.data_dir / "temporal.db",
        namespace=settings.temporal_namespace,
    )
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{temporal_port}"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    from api.main import create_app

    tasks = [
        asyncio.create_task(run_worker(settings, stop)),
        asyncio.create_task(
            serve_until(embedded_server(create_app(settings), settings.api_host, settings.api_port), stop)
        ),
    ]
    if serve_simulator:
        sim_app = create_simulator_app(SimulatorConfig(data_dir=Path(settings.data_dir / "simulator")))
        tasks.append(
            asyncio.create_task(serve_until(embedded_server(sim_app, "127.0.0.1", simulator_port), stop))
        )
    try:
        await asyncio.to_thread(wait_for_port, settings.api_host, settings.api_port, 30)
        upstream_label = f"simulated at {upstream_url}" if simulate else upstream_url or "api.openai.com"
        print(
            "\nbatchway dev is running\n"
            f"  API          http://{settings.api_host}:{settings.api_port}/v1\n"
            f"  Dashboard    http://{settings.api_host}:{settings.api_port}/dashboard (sign in: API key)\n"
            f"  Temporal UI  http://127.0.0.1:{ui_port}\n"
            f"  API key      {api_key}\n"
            f"  upstream     {upstream_label}\n"
            + (
                f"  fan-out      provider 'fanout' -> {simulator_url} (header batchway-provider: fanout)\n"
                if fanout
                else ""
            )
            + f"  data dir     {settings.data_dir.resolve()}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception():
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        temporal.terminate()
        try:
            temporal.wait(timeout=15)
        except Exception:
            temporal.kill()
        print("batchway dev stopped.", flush=True)
