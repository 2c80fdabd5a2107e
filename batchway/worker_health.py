"""The worker's small HTTP server (`BATCHWAY_WORKER_HEALTH_PORT`): `/healthz`, `/readyz` and `/metrics`,
the same answers the API gives, for orchestrators and Prometheus."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from batchway import metrics
from batchway.pipeline.deps import Deps
from batchway.readiness import readiness


def health_app(deps: Deps, client: Client) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        ready, body = await readiness(deps.engine, deps.blobs, client)
        return JSONResponse(body, status_code=200 if ready else 503)

    async def prometheus_metrics(_: Request) -> Response:
        return Response(
            await run_in_threadpool(metrics.exposition, deps.engine), media_type=metrics.CONTENT_TYPE
        )

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", prometheus_metrics)]
    )
