"""The `ResultSink` a step stores a batch's lines with: its labels and the prices that apply."""

from __future__ import annotations

from batchway.pipeline.deps import Deps
from batchway.results.pricing import PriceBook
from batchway.results.sink import BatchLabels, ResultSink
from batchway.storage.models import BatchRecord
from batchway.upstreams.base import UpstreamError


def labels(batch: BatchRecord, *, source: str = "batch") -> BatchLabels:
    return BatchLabels(
        org_id=batch.org_id,
        batch_id=batch.id,
        provider=batch.provider,
        endpoint=batch.endpoint,
        model=batch.model,
        session_id=batch.session_id,
        source=source,
    )


def sink_for(deps: Deps, batch: BatchRecord, *, source: str = "batch") -> ResultSink:
    """Blocking (it reads the prices for the batch's provider, by name then kind)."""
    try:
        kind, _ = deps.upstream_config(batch)
        providers: tuple[str, ...] = (batch.provider, kind.name)
    except UpstreamError:  # the provider was removed since: its name still prices what it ran
        providers = (batch.provider,)
    return ResultSink(
        deps.engine, deps.blobs, labels(batch, source=source), PriceBook.load(deps.engine, *providers)
    )
