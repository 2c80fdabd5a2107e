"""`batchway orgs|keys|providers|plans|prices|webhooks`: the tenants' administration."""

from __future__ import annotations

from typing import Annotated

import typer

from batchway import tenancy
from batchway.cli_common import DataDir, fail, open_session, secret_box, settings_for
from batchway.storage.db import migrate

orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)
providers_app = typer.Typer(help="Upstream providers of an org.", no_args_is_help=True)
plans_app = typer.Typer(help="Plans: a monthly token cap and the feedback feature.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Where an org's batch events are sent (signed).", no_args_is_help=True)
prices_app = typer.Typer(
    help="Prices per provider and model (dollars per million tokens).", no_args_is_help=True
)
TENANT_APPS = {
    "orgs": orgs_app,
    "keys": keys_app,
    "providers": providers_app,
    "plans": plans_app,
    "prices": prices_app,
    "webhooks": webhooks_app,
}


@orgs_app.command("create")
def orgs_create(name: str, data_dir: DataDir = None) -> None:
    with open_session(settings_for(data_dir)) as session:
        try:
            org = tenancy.create_org(session, name)
        except ValueError as exc:
            fail(str(exc))
        typer.echo(f"created org {org.name} ({org.id})")


@orgs_app.command("list")
def orgs_list(data_dir: DataDir = None) -> None:
    from sqlmodel import select

    from batchway.storage.models import Org

    with open_session(settings_for(data_dir)) as session:
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

    with open_session(settings_for(data_dir)) as session:
        try:
            org = plans.set_org(
                session, name, plan=plan, judge_provider=judge_provider, judge_model=judge_model
            )
        except ValueError as exc:
            fail(str(exc))
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

    with open_session(settings_for(data_dir)) as session:
        try:
            plan = plans.set_plan(
                session,
                name,
                monthly_token_cap=monthly_tokens,
                feedback=feedback,
                judge_sample_rate=judge_rate,
            )
        except ValueError as exc:
            fail(str(exc))
        typer.echo(f"plan {plan.name} set")


@plans_app.command("list")
def plans_list(data_dir: DataDir = None) -> None:
    from batchway import plans

    with open_session(settings_for(data_dir)) as session:
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

    settings = settings_for(data_dir)
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
        fail(str(exc))
    typer.echo(f"price set for {provider} {model}")


@prices_app.command("list")
def prices_list(data_dir: DataDir = None) -> None:
    from batchway.results.pricing import list_prices
    from batchway.storage.db import make_engine

    engine = make_engine(settings_for(data_dir).resolved_database_url)
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

    settings = settings_for(data_dir)
    with open_session(settings) as session:
        try:
            secret = webhook_endpoints.set_endpoint(session, org, url, secret_box(settings))
        except ValueError as exc:
            fail(str(exc))
    typer.echo(secret)


@webhooks_app.command("remove")
def webhooks_remove(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    from batchway import webhook_endpoints

    with open_session(settings_for(data_dir)) as session:
        try:
            removed = webhook_endpoints.remove_endpoint(session, org)
        except ValueError as exc:
            fail(str(exc))
    typer.echo("removed" if removed else "the org had no webhook")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    org: Annotated[str, typer.Option("--org")], limit: int = 20, data_dir: DataDir = None
) -> None:
    """The newest delivery attempts: event, attempt, HTTP status, error."""
    from batchway import webhook_endpoints

    with open_session(settings_for(data_dir)) as session:
        try:
            rows = webhook_endpoints.deliveries(session, org, limit)
        except ValueError as exc:
            fail(str(exc))
    for row in rows:
        outcome = "ok" if row.ok else f"failed: {row.error or row.status_code}"
        typer.echo(f"{row.batch_id}\t{row.event_type}\tattempt {row.attempt}\t{row.status_code}\t{outcome}")


@keys_app.command("create")
def keys_create(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    """Create an API key for an org and print it: it is not shown again."""
    with open_session(settings_for(data_dir)) as session:
        try:
            key = tenancy.create_api_key(session, tenancy.get_org_by_name(session, org))
        except ValueError as exc:
            fail(str(exc))
        typer.echo(key)


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    """The org's keys: id, prefix, created, last used (to the minute), revoked."""
    import datetime as dt

    def when(stamp: int | None) -> str:
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M") if stamp else "-"

    with open_session(settings_for(data_dir)) as session:
        try:
            rows = tenancy.list_api_keys(session, tenancy.get_org_by_name(session, org))
        except ValueError as exc:
            fail(str(exc))
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
    with open_session(settings_for(data_dir)) as session:
        try:
            row = tenancy.revoke_api_key(session, tenancy.get_org_by_name(session, org), key_id)
        except ValueError as exc:
            fail(str(exc))
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
    settings = settings_for(data_dir)
    box = secret_box(settings)
    with open_session(settings) as session:
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
            fail(str(exc))
        typer.echo(f"provider {row.name} ({row.kind}) set for org {org}")


@providers_app.command("list")
def providers_list(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None) -> None:
    with open_session(settings_for(data_dir)) as session:
        try:
            rows = tenancy.list_providers(session, tenancy.get_org_by_name(session, org).id)
        except ValueError as exc:
            fail(str(exc))
        for row in rows:
            options = " ".join(f"{k}={v}" for k, v in (row.options or {}).items())
            typer.echo(f"{row.name}\t{row.kind}\t{row.base_url or '(default)'}\t{options}".rstrip())
