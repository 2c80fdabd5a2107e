"""One adapter per provider config in a process (one HTTP client, one connection pool, one rate
limiter), built on first use and closed at shutdown. Building an SDK client costs tens of
milliseconds (TLS context), far too much to pay per activity."""

from __future__ import annotations

import asyncio
import logging

from batchway.settings import Settings
from batchway.upstreams.base import Upstream
from batchway.upstreams.fanout.registry import LimiterRegistry
from batchway.upstreams.registry import BuildContext, UpstreamConfig, get_kind

log = logging.getLogger(__name__)


class UpstreamPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = BuildContext(settings, LimiterRegistry())
        self._adapters: dict[tuple[object, ...], Upstream] = {}

    def get(self, config: UpstreamConfig) -> Upstream:
        key = config.fingerprint()
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = self._adapters[key] = get_kind(config.kind).build(config, self.context)
        return adapter

    async def aclose(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        results = await asyncio.gather(*(a.aclose() for a in adapters), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("closing an upstream client failed: %s", result)
