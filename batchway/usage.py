"""An org's usage by month, from its request log (the ledger: one row per line, written once, so nothing
is counted twice however often anyone polls or retries), and the monthly cap its plan sets."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from batchway.clock import now
from batchway.errors import APIError, bad_request
from batchway.storage.models import Org, Plan, RequestLog

SOURCES = ("batch", "judge")


def month_bounds(month: str | None) -> tuple[str, int, int]:
    """'YYYY-MM' (default: this month, UTC) -> (month, first second, first second of the next)."""
    if month is None:
        today = dt.datetime.fromtimestamp(now(), dt.UTC)
        month = f"{today.year:04d}-{today.month:02d}"
    try:
        year, number = (int(part) for part in month.split("-"))
        start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
    except ValueError:
        raise bad_request("month must look like YYYY-MM.", param="month") from None
    days = calendar.monthrange(year, number)[1]
    return month, int(start.timestamp()), int((start + dt.timedelta(days=days)).timestamp())


def tokens_this_month(session: Session, org_id: str) -> int:
    _, start, end = month_bounds(None)
    total = session.exec(
        select(func.coalesce(func.sum(RequestLog.total_tokens), 0)).where(
            RequestLog.org_id == org_id, RequestLog.created_at >= start, RequestLog.created_at < end
        )
    ).one()
    return int(total)


def plan_of(session: Session, org: Org) -> Plan | None:
    return session.get(Plan, org.plan) if org.plan else None


def check_cap(session: Session, org: Org) -> None:
    """A new batch is refused while the org is over its plan's monthly token cap (running ones are not
    cut off). 429 with OpenAI's `insufficient_quota`; `x-should-retry: false` keeps SDKs from retrying."""
    current = session.get(Org, org.id) or org  # the caller's copy may be cached: plans change
    plan = plan_of(session, current)
    if plan is None or plan.monthly_token_cap is None:
        return
    used = tokens_this_month(session, org.id)
    if used >= plan.monthly_token_cap:
        raise APIError(
            429,
            f"You exceeded your plan's monthly quota of {plan.monthly_token_cap} tokens ({used} used this "
            "month). New batches are refused until next month or a plan change.",
            type="insufficient_quota",
            code="insufficient_quota",
            headers={"x-should-retry": "false"},
        )


def _totals(session: Session, org_id: str, start: int, end: int, *group: Any) -> list[Any]:
    log = RequestLog
    return list(
        session.exec(
            select(
                *group,
                func.count(),
                func.coalesce(func.sum(log.prompt_tokens), 0),
                func.coalesce(func.sum(log.completion_tokens), 0),
                func.coalesce(func.sum(log.total_tokens), 0),
                func.coalesce(func.sum(log.cached_tokens), 0),
                func.coalesce(func.sum(log.reasoning_tokens), 0),
                func.coalesce(func.sum(log.cost_micros), 0),
            )
            .where(log.org_id == org_id, log.created_at >= start, log.created_at < end)
            .group_by(*group)
        ).all()
    )


def _figures(values: tuple[Any, ...]) -> dict[str, Any]:
    requests, prompt, completion, total, cached, reasoning, cost = (int(v) for v in values)
    return {
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "cached_tokens": cached,
        "reasoning_tokens": reasoning,
        "cost_usd": cost / 1_000_000,
    }


def _empty() -> dict[str, Any]:
    return _figures((0,) * 7)


def monthly_usage(session: Session, org: Org, month: str | None) -> dict[str, Any]:
    month, start, end = month_bounds(month)
    log = RequestLog
    by_source = {source: _empty() for source in SOURCES}
    for source, *values in _totals(session, org.id, start, end, log.source):
        by_source[source] = _figures(tuple(values))
    total = _empty()
    for figures in by_source.values():
        for key, value in figures.items():
            total[key] += value
    plan = plan_of(session, session.get(Org, org.id) or org)
    days = [
        {"day": dt.datetime.fromtimestamp(start + day * 86400, dt.UTC).date().isoformat()} | _empty()
        for day in range((end - start) // 86400)
    ]
    day_of = (log.created_at - start) // 86400  # integer division on SQLite and PostgreSQL alike
    for day, *values in _totals(session, org.id, start, end, day_of):
        days[int(day)] |= _figures(tuple(values))
    return {
        "object": "usage",
        "month": month,
        "total": total,
        "by_source": by_source,
        "by_model": [
            {"model": model, "source": source} | _figures(tuple(values))
            for model, source, *values in _totals(session, org.id, start, end, log.model, log.source)
        ],
        "by_provider": [
            {"provider": provider, "source": source} | _figures(tuple(values))
            for provider, source, *values in _totals(session, org.id, start, end, log.provider, log.source)
        ],
        "by_day": days,
        "plan": None
        if plan is None
        else {"name": plan.name, "monthly_token_cap": plan.monthly_token_cap, "feedback": plan.feedback},
    }
