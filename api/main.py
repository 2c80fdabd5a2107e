"""The FastAPI app: routes plus error envelopes; all state is built once in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import KeyCache
from api.dashboard import install_dashboard
from api.edge import EdgeMiddleware
from api.errors import install_error_handlers
from api.routes import batches, files, health, requests, usage
from api.state import READ_CONNECTIONS, AppState
from batchway.http import RequestIdMiddleware
from batchway.settings import Settings, get_settings
from batchway.storage.blobstore import make_blob_store
from batchway.storage.db import make_engine, migrate
from batchway.storage.hot_reads import open_hot_reads


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        migrate(engine)
        reads = await open_hot_reads(engine, READ_CONNECTIONS)
        app.state.batchway = AppState(
            settings, engine, make_blob_store(settings.resolved_blob_url), KeyCache(engine), reads
        )
        yield
        await reads.close()
        engine.dispose()

    app = FastAPI(title="batchway", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware)
    app.add_middleware(RequestIdMiddleware)

    for module in (files, batches, requests, usage, health):
        app.include_router(module.router)
    install_dashboard(app)
    return app


def app() -> FastAPI:
    """Factory for `uvicorn --factory api.main:app`."""
    return create_app()
