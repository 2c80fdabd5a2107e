"""The web dashboard: an org signs in with one of its API keys and sees its batches, every batched request
(filterable, shareable by URL) and its month's usage. Server-rendered (Jinja2, one stylesheet, one small
script, SVG charts); it lives under `/dashboard`, outside the `/v1/` bearer-key edge, with its own
cookie sessions (`session.py`) and CSRF tokens (`csrf.py`)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from api.dashboard.rendering import STATIC_DIR, STATIC_PREFIX
from api.dashboard.routes import router


def install_dashboard(app: FastAPI) -> None:
    """Mount the dashboard on the API app (idempotent: a second call changes nothing)."""
    if getattr(app.state, "dashboard_installed", False):
        return
    # Before the router: its catch-all "not found" page would otherwise shadow the assets.
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.include_router(router)
    app.state.dashboard_installed = True
