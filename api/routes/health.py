"""Liveness (`/healthz`: the process answers), readiness (`/readyz`: it can reach the database, the blob
store and Temporal) and Prometheus metrics (`/metrics`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.deps import StateDep
from api.responses import JSON
from batchway import metrics
from batchway.readiness import readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSON:
    ready, body = await readiness(state.engine, state.blobs, await state.temporal_or_none())
    return JSON(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def prometheus_metrics(state: StateDep) -> Response:
    body = await run_in_threadpool(metrics.exposition, state.engine)
    return Response(body, media_type=metrics.CONTENT_TYPE)
