"""The dashboard's pages and actions under `/dashboard`: batches (and cancelling one), requests, one
request, usage, result-file downloads (sign-in is in `signin.py`). Every read is org-scoped through the
same domain functions as the API, so another org's id is "not found" here exactly as it is there."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.dashboard import signin
from api.dashboard.guard import DashboardRoute, safe_next
from api.dashboard.pages import db_session, page_context
from api.dashboard.rendering import render
from api.dashboard.state import ViewerDep, core_state
from api.dashboard.svg import bar_chart, meter
from api.dashboard.views import BatchView, day_bars, requests_url
from batchway import batches, dashboard_queries, files, request_log
from batchway.errors import APIError
from batchway.ids import looks_like_id
from batchway.jsonl import read_chunks
from batchway.lifecycle import ACTIVE
from batchway.request_log import RequestFilters

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
router.include_router(signin.router)

BATCHES_PER_PAGE = 20
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
COUNT_CAP = 1_000  # "more than 1,000 match": counting further costs a scan and tells little more
NOTICES = {
    "cancel_requested": "Cancel requested for {batch}: lines already answered are kept.",
    "cancel_refused": "{batch} can no longer be cancelled: it is already writing its results or has ended.",
}


def _notice(notice: str | None, subject: str | None) -> dict[str, Any]:
    """The message a redirect after an action asked for, by code: never text taken from the URL."""
    if notice not in NOTICES:
        return {"notice": None, "notice_tone": None}
    return {
        "notice": NOTICES[notice].format(
            batch=subject if subject and looks_like_id(subject) else "The batch"
        ),
        "notice_tone": "warn" if notice == "cancel_refused" else "good",
    }


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse("/dashboard/batches", status_code=303)


# -- batches -------------------------------------------------------------------------------------------


@router.get("/batches")
def batches_page(
    request: Request,
    viewer: ViewerDep,
    after: str | None = None,
    before: str | None = None,
    notice: str | None = None,
    subject: str | None = None,
) -> Response:
    with db_session(request) as session:
        page = dashboard_queries.batch_page(
            session, viewer.org.id, limit=BATCHES_PER_PAGE, after=after or None, before=before or None
        )
        running = dashboard_queries.live_batch_count(session, viewer.org.id, ACTIVE)
    views = [BatchView(row) for row in page.rows]
    return render(
        request,
        "batches.html",
        page_context(
            viewer,
            "batches",
            batches=views,
            running=running,
            **_notice(notice, subject),
            newer_url=f"/dashboard/batches?before={views[0].id}" if page.has_newer and views else None,
            older_url=f"/dashboard/batches?after={views[-1].id}" if page.has_older and views else None,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        ),
    )


def _with_notice(target: str, notice: str, batch_id: str) -> str:
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("notice", "subject")]
    query += [("notice", notice), ("subject", batch_id)]
    return f"{parts.path}?{urlencode(query)}"


@router.post("/batches/{batch_id}/cancel")
async def cancel(request: Request, batch_id: str, viewer: ViewerDep) -> Response:
    form = await request.form()
    back = safe_next(str(form.get("next") or "/dashboard/batches"))
    state = core_state(request)
    try:
        await batches.cancel_batch(state.engine, await state.temporal_or_none(), viewer.org.id, batch_id)
    except APIError as error:
        if error.status_code != 400:
            raise  # another org's batch: "not found", as in the API
        return RedirectResponse(_with_notice(back, "cancel_refused", batch_id), status_code=303)
    return RedirectResponse(_with_notice(back, "cancel_requested", batch_id), status_code=303)


# -- requests ------------------------------------------------------------------------------------------


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


@router.get("/requests")
def requests_page(
    request: Request,
    viewer: ViewerDep,
    batch_id: str | None = None,
    status: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    session_id: str | None = None,
    source: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    before: str | None = None,
    notice: str | None = None,
    subject: str | None = None,
) -> Response:
    filters = RequestFilters(
        batch_id=_blank_to_none(batch_id),
        status=_blank_to_none(status),
        model=_blank_to_none(model),
        provider=_blank_to_none(provider),
        session_id=_blank_to_none(session_id),
        source=_blank_to_none(source) if source in ("batch", "judge") else None,
    )
    size = limit if limit in PAGE_SIZES else DEFAULT_PAGE_SIZE
    with db_session(request) as session:
        # Another org's batch (or none at all) is "not found" before a single row is read.
        batch = (
            BatchView(batches.get_batch(session, viewer.org.id, filters.batch_id))
            if filters.batch_id
            else None
        )
        page = dashboard_queries.request_page(
            session,
            viewer.org.id,
            filters,
            limit=size,
            after=_blank_to_none(after),
            before=_blank_to_none(before),
        )
        matching = dashboard_queries.count_requests(session, viewer.org.id, filters, cap=COUNT_CAP)
        choices = dashboard_queries.filter_choices(session, viewer.org)
    shown = {
        "batch_id": filters.batch_id,
        "status": filters.status,
        "model": filters.model,
        "provider": filters.provider,
        "session_id": filters.session_id,
        "source": filters.source,
        "limit": size if size != DEFAULT_PAGE_SIZE else None,
    }
    rows = page.rows
    return render(
        request,
        "requests.html",
        page_context(
            viewer,
            "requests",
            filters=shown,
            batch=batch,
            rows=rows,
            matching=matching,
            count_cap=COUNT_CAP,
            page_size=size,
            page_sizes=PAGE_SIZES,
            choices=choices,
            first_page=not page.has_newer,
            newest_url=requests_url(**shown) if page.has_newer else None,
            newer_url=requests_url(**shown, before=rows[0].line_id) if page.has_newer and rows else None,
            older_url=requests_url(**shown, after=rows[-1].line_id) if page.has_older and rows else None,
            status_choices=_status_choices(filters.status),
            filtered=any(value for name, value in shown.items() if name != "limit"),
            **_notice(notice, subject),
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        ),
    )


COMMON_STATUSES = ("400", "401", "404", "408", "429", "500", "502", "503")


def _status_choices(current: str | None) -> list[tuple[str, str]]:
    choices = [("", "Any status"), ("ok", "OK (2xx)"), ("error", "Error (any)")]
    codes = list(COMMON_STATUSES)
    if current and current not in ("ok", "error") and current not in codes:
        codes.append(current)
    return choices + [(code, f"HTTP {code}") for code in sorted(codes)]


@router.get("/requests/{line_id}")
def request_detail_page(request: Request, line_id: str, viewer: ViewerDep) -> Response:
    state = core_state(request)
    with db_session(request) as session:
        row = request_log.get_request(session, viewer.org.id, line_id)
        detail = request_log.request_detail(session, state.blobs, row)
    return render(request, "request.html", page_context(viewer, "requests", r=detail))


# -- usage ---------------------------------------------------------------------------------------------


def _shift_month(month: str, delta: int) -> str:
    year, number = (int(part) for part in month.split("-"))
    index = year * 12 + (number - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@router.get("/usage")
def usage_page(request: Request, viewer: ViewerDep, month: str | None = None) -> Response:
    with db_session(request) as session:
        figures = dashboard_queries.month_usage(session, viewer.org, _blank_to_none(month))
    month_name = figures["month"]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    total_tokens = figures["total"]["total_tokens"]
    busiest = max(figures["by_day"], key=lambda day: day["total_tokens"])
    description = (
        f"{total_tokens:,} tokens in {month_name}; busiest day {busiest['day']} with "
        f"{busiest['total_tokens']:,} tokens."
        if total_tokens
        else f"No tokens used in {month_name}."
    )
    chart = bar_chart(
        day_bars(figures["by_day"], today),
        title=f"Tokens by day, {month_name}",
        description=description,
        chart_id="tokens-by-day",
        unit="tokens",
    )
    plan = figures["plan"]
    cap = plan["monthly_token_cap"] if plan else None
    this_month = today[:7]
    return render(
        request,
        "usage.html",
        page_context(
            viewer,
            "usage",
            u=figures,
            chart=chart,
            plan=plan,
            cap=cap,
            cap_meter=meter(total_tokens, cap) if cap else None,
            cap_share=(total_tokens / cap) if cap else None,
            by_model=sorted(figures["by_model"], key=lambda m: -m["total_tokens"]),
            by_provider=sorted(figures["by_provider"], key=lambda p: -p["total_tokens"]),
            previous_month=_shift_month(month_name, -1),
            next_month=_shift_month(month_name, 1) if month_name < this_month else None,
        ),
    )


# -- result files --------------------------------------------------------------------------------------

UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@router.get("/files/{file_id}/content")
async def file_content(request: Request, file_id: str, viewer: ViewerDep) -> Response:
    """A result file of the org, streamed (the database is only asked before the first byte)."""
    state = core_state(request)

    def lookup() -> tuple[str, int, str]:
        with db_session(request) as session:
            row = files.get_file(session, viewer.org.id, file_id)
            return row.blob_key, row.bytes, row.filename

    key, size, filename = await run_in_threadpool(lookup)

    def body() -> Iterator[bytes]:
        with state.blobs.open_read(key) as stream:
            yield from read_chunks(stream)

    safe_name = UNSAFE_FILENAME.sub("_", filename).strip("._") or "download.jsonl"
    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={"content-length": str(size), "content-disposition": f'attachment; filename="{safe_name}"'},
    )


# Last: any other path under /dashboard is a page that does not exist.
@router.get("/{rest:path}")
def missing(rest: str) -> Response:
    if not rest.strip("/"):
        return RedirectResponse("/dashboard/batches", status_code=303)
    raise APIError(404, "There is no such page in the dashboard.")
