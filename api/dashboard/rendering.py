"""Turning pages into responses: the Jinja2 environment (autoescaped), the formatting filters, the
headers every dashboard response carries, and the error page."""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from api.dashboard.views import requests_url

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/dashboard/static"

# Pages hold an org's private data: never cached, never framed, no script or style from anywhere else
# (and none inline: the only script is dashboard.js, charts are SVG with classes).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def when(timestamp: int | None) -> str:
    if timestamp is None:
        return "—"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(timestamp: int | None) -> str:
    return "" if timestamp is None else dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


def millis(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@cache
def static_version(name: str) -> str:
    """A content hash for the asset's URL, so a new release is never served a stale cached copy."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"{STATIC_PREFIX}/{name}?v={static_version(name)}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a typo in a template is an error, not an empty cell
        auto_reload=False,  # templates ship with the code: no stat() of every file on every render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        iso=iso,
        duration=duration,
        number=number,
        millis=millis,
        usd=usd,
        score=score,
        pretty_json=pretty_json,
    )
    env.globals.update(static_url=static_url, requests_url=requests_url)
    return env


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    html = environment().get_template(template).render(request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


ERROR_TITLES = {
    400: "That request did not work",
    403: "This form has expired",
    404: "Not found",
    413: "Too large",
}


def error_page(request: Request, status_code: int, message: str, *, viewer: object = None) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {
            "title": ERROR_TITLES.get(status_code, "Something went wrong"),
            "message": message,
            "status_code": status_code,
            "viewer": viewer,
            "nav": None,
        },
        status_code=status_code,
    )
