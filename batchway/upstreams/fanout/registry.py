"""The limiters of one worker process: one `UpstreamLimiter` per (upstream, key)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from batchway.upstreams.fanout.limiter import LimiterConfig, UpstreamLimiter


class LimiterRegistry:
    """One limiter per (upstream, key), shared by every batch and chunk that runs in this process, since
    the upstream limits the key, not the batch.

    The key is only kept as a hash. The first config given for an (upstream, key) wins: explicit limits
    come from the upstream's configuration, which is the same for every batch.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._limiters: dict[tuple[str, str], UpstreamLimiter] = {}

    def get(self, upstream: str, api_key: str | None, config: LimiterConfig | None = None) -> UpstreamLimiter:
        key = (upstream, hashlib.sha256((api_key or "").encode()).hexdigest())
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = UpstreamLimiter(config, clock=self._clock)
        return limiter
