"""Prometheus metrics (prometheus-client), served at `/metrics` by the API and by the worker's small
health server. Counters live in the process that does the work (the worker stores lines and calls
upstreams); the batches-by-status gauge is read from the database at scrape time, so any process shows
the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from batchway.storage.models import BatchRecord

LINES = Counter(
    "batchway_lines_total",
    "Batch lines stored, by provider and outcome (ok, error).",
    ["provider", "outcome"],
)
TOKENS = Counter(
    "batchway_tokens_total", "Tokens of stored lines, by provider and kind.", ["provider", "kind"]
)
UPSTREAM_SECONDS = Histogram(
    "batchway_upstream_request_seconds",
    "Time of one upstream HTTP call, by provider kind and operation.",
    ["kind", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
UPSTREAM_RATE_LIMITED = Counter(
    "batchway_upstream_rate_limited_total", "429 answers from upstreams, by provider kind.", ["kind"]
)
BATCHES_ENDED = Counter("batchway_batches_ended_total", "Batches that reached a terminal status.", ["status"])

CONTENT_TYPE = CONTENT_TYPE_LATEST


@contextmanager
def timed_upstream_call(kind: str, operation: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        UPSTREAM_SECONDS.labels(kind, operation).observe(time.monotonic() - started)


class BatchStatusCollector(Collector):
    """`batchway_batches{status}`: how many batches are in each status now (from the read model)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "batchway_batches", "Batches by status, from the database.", labels=["status"]
        )
        with Session(self.engine) as session:
            rows = session.exec(select(BatchRecord.status, func.count()).group_by(BatchRecord.status)).all()
        for status, count in rows:
            gauge.add_metric([status], count)
        yield gauge


def exposition(engine: Engine | None = None) -> bytes:
    """The text format of this process's metrics (plus the batch gauge when given a database)."""
    if engine is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BatchStatusCollector(engine))
    return generate_latest(REGISTRY) + generate_latest(registry)
