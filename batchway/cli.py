"""The `batchway` command: the dev stack, the API and worker processes, and operator commands."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from batchway import tenancy
from batchway.secret_box import SecretBox, SecretKeyMissing, load_box
from batchway.settings import Settings, get_settings
from batchway.storage.db import make_engine, migrate

app = typer.Typer(help="batchway: an OpenAI-compatible Batch API gateway on Temporal.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)
providers_app = typer.Typer(help="Upstream providers of an org.", no_args_is_help=True)
batches_app = typer.Typer(help="Operate on batches.", no_args_is_help=True)
plans_app = typer.Typer(help="Plans: a monthly token cap and the feedback feature.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Where an org's batch events are sent (signed).", no_args_is_help=True)
prices_app = typer.Typer(
    help="Prices per provider and model (dollars per million tokens).", no_args_is_help=True
)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(providers_app, name="providers")
app.add_typer(batches_app, name="batches")
app.add_typer(plans_app, name="plans")
app.add_typer(prices_app, name="prices")
app.add_typer(webhooks_app, name="webhooks")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Overrides BATCHWAY_DATA_DIR.")]


def _settings(data_dir: Path | None = None) -> Settings:
    if data_dir is not None:
        os.environ["BATCHWAY_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()
    return get_settings()


def _session(settings: Settings) -> Session:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return Session(engine, expire_on_commit=False)


def _fail(message: str) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


def _box(settings: Settings) -> SecretBox:
    try:
        return load_box(settings)
    except SecretKeyMissing as exc:
        _fail(str(exc))
        raise


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

    settings = _settings(data_dir)
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

    settings = _settings(data_dir)
    # uvicorn stops accepting on SIGTERM and lets in-flight requests finish within the grace.
    uvicorn.run(
        create_app(settings),
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
    asyncio.run(run_worker(_settings(data_dir)))  # SIGTERM/SIGINT: a graceful stop, exit code 0


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


@orgs_app.command("create")
def orgs_create(name: str, data_dir: DataDir = None) -> None:
    with _session(_settings(data_dir)) as session:
        try:
            org = tenancy.create_org(session, name)
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"created org {org.name} ({org.id})")


@orgs_app.command("list")
def orgs_list(data_dir: DataDir = None) -> None:
    from sqlmodel import select

    from batchway.storage.models import Org

    with _session(_settings(data_dir)) as session:
        for org in session.exec(select(Org).order_by(Org.name)).all():
            typer.echo(f"{org.name}\t{org.id}")


@orgs_app.command("set")
def orgs_set(
    name: str,
    plan: Annotated[str | None, typer.Option("--plan", help="A plan made with `batchway plans set`.")] = None,
    judge_provider: Annotated[
        str | None, typer.Option("--judge-provider", help="The org's provider that runs the LLM judge.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="The judge's model.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Put an org on a plan, and/or choose its LLM judge (for plans with feedback)."""
    from batchway import plans

    with _session(_settings(data_dir)) as session:
        try:
            org = plans.set_org(
                session, name, plan=plan, judge_provider=judge_provider, judge_model=judge_model
            )
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(
            f"org {org.name}: plan {org.plan or '-'}, "
            f"judge {org.judge_provider or '-'} {org.judge_model or ''}"
        )


@plans_app.command("set")
def plans_set(
    name: str,
    monthly_tokens: Annotated[int | None, typer.Option("--monthly-tokens", help="Monthly token cap.")] = None,
    feedback: Annotated[bool, typer.Option("--feedback/--no-feedback", help="Score batch lines.")] = False,
    judge_rate: Annotated[float, typer.Option("--judge-rate", help="Share of lines the judge scores.")] = 0.1,
    data_dir: DataDir = None,
) -> None:
    """Create or change a plan."""
    from batchway import plans

    with _session(_settings(data_dir)) as session:
        try:
            plan = plans.set_plan(
                session,
                name,
                monthly_token_cap=monthly_tokens,
                feedback=feedback,
                judge_sample_rate=judge_rate,
            )
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"plan {plan.name} set")


@plans_app.command("list")
def plans_list(data_dir: DataDir = None) -> None:
    from batchway import plans

    with _session(_settings(data_dir)) as session:
        for plan in plans.list_plans(session):
            cap = plan.monthly_token_cap if plan.monthly_token_cap is not None else "unlimited"
            typer.echo(
                f"{plan.name}\tcap {cap}\tfeedback {'on' if plan.feedback else 'off'}"
                f"\tjudge {plan.judge_sample_rate}"
            )


@prices_app.command("set")
def prices_set(
    provider: Annotated[str, typer.Option("--provider", help="A provider name or kind.")],
    model: Annotated[str, typer.Option("--model", help="A model name (prefix: the longest match wins).")],
    input_price: Annotated[float, typer.Option("--input", help="Dollars per million input tokens.")],
    output_price: Annotated[float, typer.Option("--output", help="Dollars per million output tokens.")],
    cached_input: Annotated[
        float | None, typer.Option("--cached-input", help="Per million cached tokens.")
    ] = None,
    batch_discount: Annotated[
        float, typer.Option("--batch-discount", help="Fraction off for batches.")
    ] = 0.5,
    data_dir: DataDir = None,
) -> None:
    """Set what a model costs on a provider; lines are priced when they are stored."""
    from batchway.results.pricing import set_price
    from batchway.storage.db import make_engine

    settings = _settings(data_dir)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    try:
        set_price(
            engine,
            provider=provider,
            model=model,
            input_per_million=input_price,
            cached_input_per_million=cached_input,
            output_per_million=output_price,
            batch_discount=batch_discount,
        )
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"price set for {provider} {model}")


@prices_app.command("list")
def prices_list(data_dir: DataDir = None) -> None:
    from batchway.results.pricing import list_prices
    from batchway.storage.db import make_engine

    engine = make_engine(_settings(data_dir).resolved_database_url)
    migrate(engine)
    for price in list_prices(engine):
        typer.echo(
            f"{price.provider}\t{price.model}\tin {price.input_per_million}"
            f"\tcached {price.cached_input_per_million}"
            f"\tout {price.output_per_million}\tbatch -{price.batch_discount:.0%}"
        )


@webhooks_app.command("set")
def webhooks_set(
    org: Annotated[str, typer.Option("--org")],
    url: Annotated[str, typer.Option("--url", help="Where batch.completed/failed/cancelled/expired go.")],
    data_dir: DataDir = None,
) -> None:
    """Send the org's batch events to URL, signed with a new secret (printed once: keep it)."""
    from batchway import webhook_endpoints

    settings = _settings(data_dir)
    with _session(settings) as session:
        try:
            secret = webhook_endpoints.set_endpoint(session, org, url, _box(settings))
        except ValueError as exc:
            _fail(str(exc))
    typer.echo(secret)


@webhooks_app.command("remove")
def webhooks_remove(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    from batchway import webhook_endpoints

    with _session(_settings(data_dir)) as session:
        try:
            removed = webhook_endpoints.remove_endpoint(session, org)
        except ValueError as exc:
            _fail(str(exc))
    typer.echo("removed" if removed else "the org had no webhook")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    org: Annotated[str, typer.Option("--org")], limit: int = 20, data_dir: DataDir = None
) -> None:
    """The newest delivery attempts: event, attempt, HTTP status, error."""
    from batchway import webhook_endpoints

    with _session(_settings(data_dir)) as session:
        try:
            rows = webhook_endpoints.deliveries(session, org, limit)
        except ValueError as exc:
            _fail(str(exc))
    for row in rows:
        outcome = "ok" if row.ok else f"failed: {row.error or row.status_code}"
        typer.echo(f"{row.batch_id}\t{row.event_type}\tattempt {row.attempt}\t{row.status_code}\t{outcome}")


@keys_app.command("create")
def keys_create(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    """Create an API key for an org and print it: it is not shown again."""
    with _session(_settings(data_dir)) as session:
        try:
            key = tenancy.create_api_key(session, tenancy.get_org_by_name(session, org))
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(key)


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    """The org's keys: id, prefix, created, last used (to the minute), revoked."""
    import datetime as dt

    def when(stamp: int | None) -> str:
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M") if stamp else "-"

    with _session(_settings(data_dir)) as session:
        try:
            rows = tenancy.list_api_keys(session, tenancy.get_org_by_name(session, org))
        except ValueError as exc:
            _fail(str(exc))
        for row in rows:
            state = f"revoked {when(row.revoked_at)}" if row.revoked_at else "active"
            typer.echo(
                f"{row.id}\t{row.prefix}...\tcreated {when(row.created_at)}"
                f"\tlast used {when(row.last_used_at)}\t{state}"
            )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The id `batchway keys list` shows.")],
    org: Annotated[str, typer.Option("--org")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key: every API process refuses it within 2 seconds."""
    with _session(_settings(data_dir)) as session:
        try:
            row = tenancy.revoke_api_key(session, tenancy.get_org_by_name(session, org), key_id)
        except ValueError as exc:
            _fail(str(exc))
    typer.echo(f"key {row.id} ({row.prefix}...) revoked")


@providers_app.command("set")
def providers_set(
    kind: Annotated[str, typer.Argument(help="Provider kind: openai, anthropic or fanout.")],
    org: Annotated[str, typer.Option("--org")],
    api_key: Annotated[str | None, typer.Option("--api-key")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="The API root, e.g. http://host/v1.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name for the batchway-provider header.")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="fanout: requests/min never exceeded.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="fanout: tokens/min never exceeded.")] = None,
    max_concurrency: Annotated[
        int | None, typer.Option("--max-concurrency", help="fanout: calls in flight at most.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Add or replace one of an org's upstream providers. A fan-out provider needs no limits: batchway
    finds the upstream's sustainable rate from its answers; limits given are never exceeded."""
    limits = {"rpm": rpm, "tpm": tpm, "max_concurrency": max_concurrency}
    options = {key: value for key, value in limits.items() if value is not None}
    settings = _settings(data_dir)
    box = _box(settings)
    with _session(settings) as session:
        try:
            row = tenancy.set_provider(
                session,
                tenancy.get_org_by_name(session, org),
                name or kind,
                kind=kind,
                api_key=api_key,
                base_url=base_url,
                options=options or None,
                box=box,
            )
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"provider {row.name} ({row.kind}) set for org {org}")


secrets_app = typer.Typer(help="The master key that encrypts upstream keys at rest.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("rotate")
def secrets_rotate(data_dir: DataDir = None) -> None:
    """Re-encrypt every stored secret under the first key of BATCHWAY_SECRET_KEY (then the old key can be
    dropped); secrets stored before encryption existed get encrypted."""
    from batchway.secret_rotation import rotate_all

    settings = _settings(data_dir)
    box = _box(settings)
    with _session(settings) as session:
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

    settings = _settings(data_dir)

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


@providers_app.command("list")
def providers_list(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    with _session(_settings(data_dir)) as session:
        try:
            rows = tenancy.list_providers(session, tenancy.get_org_by_name(session, org).id)
        except ValueError as exc:
            _fail(str(exc))
        for row in rows:
            options = " ".join(f"{k}={v}" for k, v in (row.options or {}).items())
            typer.echo(f"{row.name}\t{row.kind}\t{row.base_url or '(default)'}\t{options}".rstrip())


@batches_app.command("list")
def batches_list(
    org: Annotated[str, typer.Option("--org")], limit: int = 20, data_dir: DataDir = None
) -> None:
    from batchway import batches

    with _session(_settings(data_dir)) as session:
        try:
            rows, _ = batches.list_batches(
                session, tenancy.get_org_by_name(session, org).id, limit=limit, after=None
            )
        except ValueError as exc:
            _fail(str(exc))
        for row in rows:
            typer.echo(f"{row.id}\t{row.status}\t{row.provider}\t{row.completed}+{row.failed}/{row.total}")


@batches_app.command("show")
def batches_show(batch_id: str, data_dir: DataDir = None) -> None:
    from batchway.storage.models import BatchRecord
    from batchway.wire import batch_object

    with _session(_settings(data_dir)) as session:
        row = session.get(BatchRecord, batch_id)
        if row is None:
            _fail(f"no batch {batch_id}")
        typer.echo(json.dumps(batch_object(row), indent=2))


@batches_app.command("cancel")
def batches_cancel(batch_id: str, data_dir: DataDir = None) -> None:
    """Cancel a batch (the same domain function as the API: the row, then the workflow's signal)."""
    from batchway import batches
    from batchway.errors import APIError
    from batchway.storage.models import BatchRecord
    from batchway.temporal_client import connect

    settings = _settings(data_dir)
    with _session(settings) as session:
        row = session.get(BatchRecord, batch_id)
        if row is None:
            _fail(f"no batch {batch_id}")
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
        _fail(exc.message)
    typer.echo(f"{batch_id}: {row.status}")


if __name__ == "__main__":
    app()
