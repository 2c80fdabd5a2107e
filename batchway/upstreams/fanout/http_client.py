"""The HTTP client a fan-out upstream sends its lines through: one per (upstream, key) in a worker
process, made of a few small httpx connection pools.

Why not one `httpx.AsyncClient` with hundreds of connections: on every request httpcore (1.0) walks its
connections and, for each idle one, counts the idle ones again, so a request costs O(connections^2)
checks. With the 100-256 connections a fast fan-out keeps open that was ~25 ms of CPU per call, and the
worker, pinned at one core, ran a 6,000/min upstream at 30x the ideal time (BENCHMARKS.md, section 4).
Pools of at most `SHARD_CONNECTIONS` keep that cost negligible; each request goes to the pool with the
fewest requests in flight, so the connections in use stay few and warm.
"""

from __future__ import annotations

import math

import httpx

SHARD_CONNECTIONS = 16


class ShardedClient:
    def __init__(self, *, headers: dict[str, str], timeout: httpx.Timeout, max_connections: int) -> None:
        shards = max(1, math.ceil(max_connections / SHARD_CONNECTIONS))
        per_shard = math.ceil(max_connections / shards)
        # One TLS context for every pool: building one costs tens of ms of CPU.
        tls = httpx.create_ssl_context()
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._clients = [
            httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits, verify=tls)
            for _ in range(shards)
        ]
        self._in_flight = [0] * shards
        self.max_connections = shards * per_shard

    @property
    def shards(self) -> int:
        return len(self._clients)

    async def post(self, url: str, *, content: bytes) -> httpx.Response:
        index = min(range(len(self._in_flight)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            return await self._clients[index].post(url, content=content)
        finally:
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
