"""Upstream adapters behind one protocol; `build_provider` picks one from an org's provider row."""

from __future__ import annotations

from batchway.models import ProviderConfig
from batchway.providers.base import BatchProvider
from batchway.providers.openai_batch import OpenAIBatchProvider
from batchway.settings import Settings


def build_provider(config: ProviderConfig, settings: Settings) -> BatchProvider:
    if config.kind == "openai":
        return OpenAIBatchProvider(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout_seconds=settings.upstream_timeout_seconds,
        )
    raise ValueError(f"unknown provider kind {config.kind!r}")
