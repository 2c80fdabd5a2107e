"""Who is calling: the org behind a bearer key, remembered briefly so a cheap GET does not pay a key
lookup, yet a revoked key is refused by every API process within `REVOCATION_CHECK_SECONDS`.

A valid key is remembered for `KEY_CACHE_SECONDS`; every `REVOCATION_CHECK_SECONDS` one request reads
a marker that changes whenever any key is revoked (an indexed max/count), and a change empties the
cache. Lookups and checks run in the thread pool."""

from __future__ import annotations

import threading
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from batchway import tenancy
from batchway.storage.models import Org

KEY_CACHE_SECONDS = 30.0
REVOCATION_CHECK_SECONDS = 2.0


class KeyCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: dict[str, tuple[float, Org]] = {}
        self._marker: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def _lookup(self, key: str) -> Org:
        with Session(self.engine, expire_on_commit=False) as session:
            org = tenancy.org_for_key(session, key or None)
        self._known[key] = (time.monotonic() + KEY_CACHE_SECONDS, org)
        return org

    def _check_revocations(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked_at < REVOCATION_CHECK_SECONDS:
                return
            with Session(self.engine) as session:
                marker = tenancy.revocation_marker(session)
            if marker != self._marker:
                self._known.clear()
                self._marker = marker
            self._checked_at = time.monotonic()

    async def org_for(self, key: str) -> Org:
        """The key's org (401 APIError if there is none)."""
        if time.monotonic() - self._checked_at >= REVOCATION_CHECK_SECONDS:
            await run_in_threadpool(self._check_revocations)
        cached = self._known.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return await run_in_threadpool(self._lookup, key)


def bearer_key(authorization: str) -> str:
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""
