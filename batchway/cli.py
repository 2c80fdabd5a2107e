"""The `batchway` command: the dev stack, the API and worker processes, and operator commands (the
tenants' administration lives in `batchway.cli_tenants`)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Annotated

import typer

from batchway import tenancy
from batchway.cli_common import DataDir, fail, open_session, secret_box, settings_for
from batchway.cli_tenants import TENANT_APPS

app = typer.Typer(help="batchway: an OpenAI-compatible Batch API gateway on Temporal.", no_args_is_help=True)
batches_app = typer.Typer(help="Operate on batches.", no_args_is_help=True)
for name, sub_app in TENANT_APPS.items():
    app.add_typer(sub_app, name=name)
app.add_typer(batches_app, name="batches")


@app.command()
def dev(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="API port (default 8000).")] = None,
    temporal_port: int = 7233,
    ui_port: int = 8233,
    simulator_port: int = 8100,
    fanout: Annotated[
        bool,
        typer.Option(
            "--fanout",
            help="Also give the dev org a provider 'fanout' that runs lines against the simulator's chat "
            "API (choose it per batch with the 'batchway-provider: fanout' header).",
        ),
    ] = False,
) -> None:
    """Embedded Temporal, worker and API in one process tree; Ctrl-C stops it cleanly."""
    from batchway.devstack import run_dev

    settings = settings_for(data_dir)
    if port is not None:
        settings = settings.model_copy(update={"api_port": port})
    asyncio.run(
        run_dev(
            settings,
            temporal_port=temporal_port,
            ui_port=ui_port,
            simulator_port=simulator_port,
            fanout=fanout,
        )
    )


@app.command()
def api(host: str | None = None, port: int | None = None, data_dir: DataDir = None) -> None:
    """Run the HTTP API (stateless; run as many as you like)."""
    import uvicorn

    from api.main import create_app

    settings = settings_for(data_dir)
    application = create_app(settings)
    # What is imported and built by now lives as long as the process: frozen, full collections stop
    # walking it (under load on PostgreSQL they paused the API for 90 ms every few seconds).
    gc.freeze()
    # uvicorn stops accepting on SIGTERM and lets in-flight requests finish within the grace.
    uvicorn.run(
        application,
        host=host or settings.api_host,
        port=port or settings.api_port,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run a Temporal worker for batch workflows and activities."""
    import logging

    from worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(settings_for(data_dir)))  # SIGTERM/SIGINT: a graceful stop, exit code 0


@app.command()
def simulate(
    host: str = "127.0.0.1",
    port: int = 8100,
    data_dir: Annotated[Path, typer.Option(help="Where the simulator keeps files.")] = Path(
        ".batchway/simulator"
    ),
    lines_per_second: float = 200.0,
    validate_seconds: float = 0.2,
    cancel_seconds: float = 0.3,
    window_seconds: float = 86400.0,
    api_key: str | None = None,
) -> None:
    """A faithful OpenAI Files + Batches upstream for tests and demos."""
    from batchway.simulator import SimulatorConfig, run_simulator

    config = SimulatorConfig(
        data_dir=data_dir,
        api_key=api_key,
        lines_per_second=lines_per_second,
        validate_seconds=validate_seconds,
        cancel_seconds=cancel_seconds,
        window_seconds=window_seconds,
    )
    run_simulator(config, host=host, port=port)


secrets_app = typer.Typer(help="The master key that encrypts upstream keys at rest.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("rotate")
def secrets_rotate(data_dir: DataDir = None) -> None:
    """Re-encrypt every stored secret under the first key of BATCHWAY_SECRET_KEY (then the old key can be
    dropped); secrets stored before encryption existed get encrypted."""
    from batchway.secret_rotation import rotate_all

    settings = settings_for(data_dir)
    box = secret_box(settings)
    with open_session(settings) as session:
        count = rotate_all(session, box)
    typer.echo(f"{count} secrets re-encrypted")


temporal_app = typer.Typer(help="The Temporal cluster batchway runs on.", no_args_is_help=True)
app.add_typer(temporal_app, name="temporal")


@temporal_app.command("setup")
def temporal_setup(
    create_namespace: Annotated[
        bool, typer.Option("--create-namespace", help="Create BATCHWAY_TEMPORAL_NAMESPACE if missing.")
    ] = False,
    retention_hours: Annotated[int, typer.Option(help="Retention of a namespace it creates.")] = 168,
    data_dir: DataDir = None,
) -> None:
    """Register batchway's search attributes (and optionally the namespace); safe to run again."""
    from datetime import timedelta

    from batchway.temporal_client import connect
    from batchway.temporal_setup import ensure_namespace, ensure_search_attributes

    settings = settings_for(data_dir)

    async def setup() -> tuple[bool, list[str]]:
        client = await connect(settings)
        created = False
        if create_namespace:
            created = await ensure_namespace(
                client, settings.temporal_namespace, timedelta(hours=retention_hours)
            )
        return created, await ensure_search_attributes(client, settings.temporal_namespace)

    created, added = asyncio.run(setup())
    if created:
        typer.echo(f"namespace {settings.temporal_namespace} created")
    typer.echo(f"search attributes added: {', '.join(added)}" if added else "search attributes: all present")


@batches_app.command("list")
def batches_list(
    org: Annotated[str, typer.Option("--org")], limit: int = 20, data_dir: DataDir = None
) -> None:
    from batchway import batches

    with open_session(settings_for(data_dir)) as session:
        try:
            rows, _ = batches.list_batches(
                session, tenancy.get_org_by_name(session, org).id, limit=limit, after=None
            )
        except ValueError as exc:
            fail(str(exc))
        for row in rows:
            typer.echo(f"{row.id}\t{row.status}\t{row.provider}\t{row.completed}+{row.failed}/{row.total}")


@batches_app.command("show")
def batches_show(batch_id: str, data_dir: DataDir = None) -> None:
    from batchway.storage.models import BatchRecord
    from batchway.wire import batch_object

    with open_session(settings_for(data_dir)) as session:
        row = session.get(BatchRecord, batch_id)
        if row is None:
            fail(f"no batch {batch_id}")
        typer.echo(json.dumps(batch_object(row), indent=2))


@batches_app.command("cancel")
def batches_cancel(batch_id: str, data_dir: DataDir = None) -> None:
    """Cancel a batch (the same domain function as the API: the row, then the workflow's signal)."""
    from batchway import batches
    from batchway.errors import APIError
    from batchway.storage.models import BatchRecord
    from batchway.temporal_client import connect

    settings = settings_for(data_dir)
    with open_session(settings) as session:
        row = session.get(BatchRecord, batch_id)
        if row is None:
            fail(f"no batch {batch_id}")
        engine, org_id = session.get_bind(), row.org_id

    async def cancel() -> BatchRecord:
        try:
            client = await connect(settings)
        except Exception as exc:  # the row flag alone still cancels it at the workflow's next poll
            typer.secho(f"Temporal unreachable ({exc}); the cancel is recorded on the batch", err=True)
            client = None
        return await batches.cancel_batch(engine, client, org_id, batch_id)

    try:
        row = asyncio.run(cancel())
    except APIError as exc:
        fail(exc.message)
    typer.echo(f"{batch_id}: {row.status}")


if __name__ == "__main__":
    app()
