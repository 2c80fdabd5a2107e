"""Provider kinds: which adapter runs each, in which style, for which endpoints, with which options.

Adding an upstream is one entry here plus its adapter module; nothing else branches on the kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from batchway.settings import Settings
from batchway.upstreams.anthropic.parts import AnthropicOptions, plan_parts
from batchway.upstreams.base import Upstream
from batchway.upstreams.fanout.adapter import FanoutOptions, FanoutUpstream
from batchway.upstreams.fanout.registry import LimiterRegistry

# Every endpoint a batch may name (OpenAI's batch endpoints batchway supports).
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """What an adapter is built from: a provider row's connection settings, decoupled from the ORM."""

    kind: str
    api_key: str | None
    base_url: str | None
    options: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> tuple[Any, ...]:
        return (self.kind, self.api_key, self.base_url, tuple(sorted(self.options.items())))


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What adapters of one process share: settings, and the fan-out rate limiters (one per upstream and
    key, whichever provider config names them)."""

    settings: Settings
    limiters: LimiterRegistry


# Reads a batch's stored input once, before anything is sent upstream: returns the lines that cannot run
# on this kind of upstream (as `batch_input.LineProblem`s) and the adapter's first checkpoint.
PrepareInput = Callable[[BinaryIO, dict[str, Any]], tuple[list[Any], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ProviderKind:
    name: str
    style: Literal["remote", "executed"]
    endpoints: tuple[str, ...]
    build: Callable[[UpstreamConfig, BuildContext], Upstream]
    options_model: type[BaseModel] = NoOptions
    prepare_input: PrepareInput | None = None

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The options validated against this kind's model; ValueError naming the problem otherwise."""
        try:
            return self.options_model.model_validate(options or {}).model_dump(exclude_unset=True)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"invalid options for a {self.name} provider: {problems}") from None


def _build_openai(config: UpstreamConfig, context: BuildContext) -> Upstream:
    from batchway.upstreams.openai_batch import OpenAIBatchUpstream

    return OpenAIBatchUpstream(
        api_key=config.api_key,
        base_url=config.base_url,
        timeout_seconds=context.settings.upstream_timeout_seconds,
    )


def _build_fanout(config: UpstreamConfig, context: BuildContext) -> Upstream:
    if not config.base_url:
        raise ValueError("a fan-out provider needs a base URL")
    options = FanoutOptions.model_validate(config.options)
    limiter_config = FanoutUpstream.limiter_config(options, context.settings.fanout_worker_share)
    return FanoutUpstream(
        base_url=config.base_url,
        api_key=config.api_key,
        options=options,
        limiter=context.limiters.get(config.base_url, config.api_key, limiter_config),
        timeout_seconds=context.settings.upstream_timeout_seconds,
        max_connections=limiter_config.max_concurrency or limiter_config.ceiling_concurrency,
    )


def _build_anthropic(config: UpstreamConfig, context: BuildContext) -> Upstream:
    from batchway.upstreams.anthropic.adapter import AnthropicBatchUpstream

    return AnthropicBatchUpstream(
        api_key=config.api_key,
        base_url=config.base_url,
        options=AnthropicOptions.model_validate(config.options),
        timeout_seconds=context.settings.upstream_timeout_seconds,
    )


def _prepare_anthropic(stream: BinaryIO, options: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    problems, parts = plan_parts(stream, AnthropicOptions.model_validate(options))
    return problems, {"parts": [part.model_dump() for part in parts]}


KINDS: dict[str, ProviderKind] = {
    kind.name: kind
    for kind in (
        ProviderKind(name="openai", style="remote", endpoints=BATCH_ENDPOINTS, build=_build_openai),
        ProviderKind(
            name="anthropic",
            style="remote",
            endpoints=("/v1/chat/completions",),
            build=_build_anthropic,
            options_model=AnthropicOptions,
            prepare_input=_prepare_anthropic,
        ),
        ProviderKind(
            name="fanout",
            style="executed",
            endpoints=BATCH_ENDPOINTS,
            build=_build_fanout,
            options_model=FanoutOptions,
        ),
    )
}


# The SDK-backed adapters are imported on first use, so an API process never loads the openai or anthropic
# SDK. A worker loads the default kind's when it starts: otherwise the first batch it runs pays about a
# second of imports in its submit (measured with bench/ingest.py). The anthropic SDK (~40 MiB of RSS)
# stays lazy, for the workers that never run an Anthropic batch.
PRELOADED_ADAPTER_MODULES = ("batchway.upstreams.openai_batch",)


def preload_adapters() -> None:
    for module in PRELOADED_ADAPTER_MODULES:
        importlib.import_module(module)


def get_kind(name: str) -> ProviderKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown provider kind {name!r}; known: {', '.join(KINDS)}") from None
