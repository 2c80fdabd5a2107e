"""Reads the web dashboard needs beyond the API's: pages of batches and request-log rows in both
directions (a page of newer rows as well as older ones, so "Newer" links work from a shared URL), how many
request rows a filter matches, and the values worth offering in the filter pickers.

Request rows are filtered exactly like `GET /v1/requests` (`batchway.request_log.RequestFilters`) and
paged by key (`id`), never by offset: page 1,000 of a 50,000-line batch costs what page 1 costs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import desc, func
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from batchway import usage
from batchway.errors import bad_request, not_found
from batchway.ids import looks_like_id
from batchway.paging import page
from batchway.request_log import RequestFilters, status_filter
from batchway.storage.models import BatchRecord, Org, ProviderConfig, RequestLog

# Never needed to draw a batch row, and the upstream checkpoint can be large.
LIST_DEFERRED = (defer(BatchRecord.upstream), defer(BatchRecord.request_headers))


@dataclass(frozen=True, slots=True)
class Page:
    """Rows newest first, and whether there are newer rows before them and older rows after them."""

    rows: list[Any]
    has_newer: bool
    has_older: bool


def _conditions(session: Session, org_id: str, filters: RequestFilters) -> list[Any]:
    """The WHERE clause of a filtered view: the org's rows, as in `GET /v1/requests`. A batch filter must
    name one of the org's batches ("not found" otherwise, never an empty page that confirms nothing).

    Both conditions stay even for a batch (all its rows are its org's): with them SQLite walks the org's
    index in id order and stops after a page, the fastest plan for the recent batches people look at
    (an old batch of an org with millions of newer rows would want an index on (batch_id, id); see
    bench/dashboard-draft.md)."""
    if filters.batch_id is not None:
        batch = session.get(BatchRecord, filters.batch_id) if looks_like_id(filters.batch_id) else None
        if batch is None or batch.org_id != org_id:
            raise not_found("Batch", filters.batch_id)
    conditions: list[Any] = [RequestLog.org_id == org_id]
    if filters.batch_id is not None:
        conditions.append(RequestLog.batch_id == filters.batch_id)
    for column, value in (
        (RequestLog.model, filters.model),
        (RequestLog.provider, filters.provider),
        (RequestLog.session_id, filters.session_id),
        (RequestLog.source, filters.source),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.status is not None:
        conditions.append(status_filter(filters.status))  # the API's own parsing: same values accepted
    return conditions


def _anchor_id(session: Session, org_id: str, line_id: str, param: str) -> int:
    anchor = (
        session.exec(select(RequestLog.id, RequestLog.org_id).where(RequestLog.line_id == line_id)).first()
        if looks_like_id(line_id)
        else None
    )
    if anchor is None or anchor[1] != org_id:
        raise bad_request(f"No such request to page from: {line_id}", param=param)
    return int(anchor[0])


def _page_ids(session: Session, conditions: list[Any], *, limit: int, newest_first: bool) -> list[int]:
    order = desc(RequestLog.id) if newest_first else RequestLog.id
    return list(session.exec(select(RequestLog.id).where(*conditions).order_by(order).limit(limit)).all())


def _rows_by_id(session: Session, ids: list[int]) -> list[RequestLog]:
    if not ids:
        return []
    return list(
        session.exec(select(RequestLog).where(RequestLog.id.in_(ids)).order_by(desc(RequestLog.id))).all()
    )


def request_page(
    session: Session,
    org_id: str,
    filters: RequestFilters,
    *,
    limit: int,
    after: str | None = None,
    before: str | None = None,
) -> Page:
    """One page of the org's request rows, newest first: the first page, the rows older than `after`,
    or the rows newer than `before` (a line id each).

    The page's ids are chosen first and its rows read after: when a database sorts a batch's rows to find
    the page (PostgreSQL does until it has statistics for a freshly written batch), it sorts ids, not
    whole rows, which is several times faster."""
    conditions = _conditions(session, org_id, filters)
    if before is not None:
        anchor = _anchor_id(session, org_id, before, "before")
        ids = _page_ids(session, [*conditions, RequestLog.id > anchor], limit=limit + 1, newest_first=False)
        if len(ids) > limit:
            return Page(_rows_by_id(session, ids[:limit]), has_newer=True, has_older=True)
        # Fewer than a page newer than the anchor: show the newest page instead of a short one.
        return request_page(session, org_id, filters, limit=limit)
    if after is not None:
        conditions.append(RequestLog.id < _anchor_id(session, org_id, after, "after"))
    ids = _page_ids(session, conditions, limit=limit + 1, newest_first=True)
    return Page(_rows_by_id(session, ids[:limit]), has_newer=after is not None, has_older=len(ids) > limit)


def count_requests(session: Session, org_id: str, filters: RequestFilters, *, cap: int) -> int:
    """How many request rows the filters match, counting at most `cap + 1` of them: "more than `cap`" is
    as useful on a page as the exact figure, and never costs a scan of a large org's whole log."""
    matching = select(RequestLog.id).where(*_conditions(session, org_id, filters)).limit(cap + 1).subquery()
    return int(session.exec(select(func.count()).select_from(matching)).one())


def batch_page(
    session: Session, org_id: str, *, limit: int, after: str | None = None, before: str | None = None
) -> Page:
    """One page of the org's batches, newest first (the order of `GET /v1/batches`), in either direction."""
    if before is not None:
        rows, more = page(
            session,
            BatchRecord,
            org_id=org_id,
            after=before,
            limit=limit,
            descending=False,
            options=LIST_DEFERRED,
        )
        if more:
            return Page(rows[::-1], has_newer=True, has_older=True)
        return batch_page(session, org_id, limit=limit)
    rows, more = page(
        session, BatchRecord, org_id=org_id, after=after, limit=limit, descending=True, options=LIST_DEFERRED
    )
    return Page(rows, has_newer=after is not None, has_older=more)


def live_batch_count(session: Session, org_id: str, statuses: frozenset[str]) -> int:
    """How many of the org's batches are in one of `statuses` (the dashboard refreshes while any runs)."""
    return int(
        session.exec(
            select(func.count())
            .select_from(BatchRecord)
            .where(BatchRecord.org_id == org_id, BatchRecord.status.in_(statuses))
        ).one()
    )


@dataclass(frozen=True, slots=True)
class FilterChoices:
    models: list[str]
    providers: list[str]


def filter_choices(session: Session, org: Org) -> FilterChoices:
    """Models and providers worth suggesting in the filters: from the org's batches and configured
    providers (a few rows), never by scanning the request log."""
    batch_models = session.exec(
        select(BatchRecord.model)
        .where(BatchRecord.org_id == org.id, BatchRecord.model.is_not(None))
        .distinct()
    ).all()
    batch_providers = session.exec(
        select(BatchRecord.provider).where(BatchRecord.org_id == org.id).distinct()
    ).all()
    configured = session.exec(select(ProviderConfig.name).where(ProviderConfig.org_id == org.id)).all()
    models = {m for m in batch_models if m} | ({org.judge_model} if org.judge_model else set())
    return FilterChoices(sorted(models), sorted(set(batch_providers) | set(configured)))


# -- the month's usage in one scan ---------------------------------------------------------------------

FIGURES = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
)


@dataclass(slots=True)
class _Sums:
    values: list[int]
    cost_micros: int = 0

    def add(self, values: tuple[int, ...], cost_micros: int) -> None:
        self.values = [a + b for a, b in zip(self.values, values, strict=True)]
        self.cost_micros += cost_micros

    def figures(self) -> dict[str, Any]:
        return dict(zip(FIGURES, self.values, strict=True)) | {"cost_usd": self.cost_micros / 1_000_000}


def _sums() -> _Sums:
    return _Sums([0] * len(FIGURES))


def month_usage(session: Session, org: Org, month: str | None) -> dict[str, Any]:
    """The body of `GET /v1/usage` (`batchway.usage.monthly_usage`: same keys, same figures) from one
    grouped scan of the month's rows instead of one per breakdown: the usage page of an org with a
    50,000-line batch this month renders several times faster."""
    month, start, end = usage.month_bounds(month)
    log = RequestLog
    day_of = (log.created_at - start) // 86400  # integer division on SQLite and PostgreSQL alike
    rows = session.exec(
        select(
            log.source,
            log.model,
            log.provider,
            day_of,
            func.count(),
            func.coalesce(func.sum(log.prompt_tokens), 0),
            func.coalesce(func.sum(log.completion_tokens), 0),
            func.coalesce(func.sum(log.total_tokens), 0),
            func.coalesce(func.sum(log.cached_tokens), 0),
            func.coalesce(func.sum(log.reasoning_tokens), 0),
            func.coalesce(func.sum(log.cost_micros), 0),
        )
        .where(log.org_id == org.id, log.created_at >= start, log.created_at < end)
        .group_by(log.source, log.model, log.provider, day_of)
    ).all()
    total, by_source = _sums(), {source: _sums() for source in usage.SOURCES}
    by_model: dict[tuple[Any, str], _Sums] = {}
    by_provider: dict[tuple[Any, str], _Sums] = {}
    days = [_sums() for _ in range((end - start) // 86400)]
    for source, model, provider, day, *sums in rows:
        values, cost = tuple(int(v) for v in sums[:-1]), int(sums[-1])
        for bucket in (
            total,
            by_source.setdefault(source, _sums()),
            by_model.setdefault((model, source), _sums()),
            by_provider.setdefault((provider, source), _sums()),
            days[int(day)],
        ):
            bucket.add(values, cost)
    plan = usage.plan_of(session, session.get(Org, org.id) or org)
    return {
        "object": "usage",
        "month": month,
        "total": total.figures(),
        "by_source": {source: sums.figures() for source, sums in by_source.items()},
        "by_model": [{"model": m, "source": s} | sums.figures() for (m, s), sums in by_model.items()],
        "by_provider": [
            {"provider": p, "source": s} | sums.figures() for (p, s), sums in by_provider.items()
        ],
        "by_day": [
            {"day": dt.datetime.fromtimestamp(start + index * 86400, dt.UTC).date().isoformat()}
            | sums.figures()
            for index, sums in enumerate(days)
        ],
        "plan": None
        if plan is None
        else {"name": plan.name, "monthly_token_cap": plan.monthly_token_cap, "feedback": plan.feedback},
    }
