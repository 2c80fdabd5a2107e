"""Feedback for a completed batch, for orgs whose plan has it: every successful chat line gets a heuristic
score with reasons, and a deterministic sample is also graded by an LLM judge (one of the org's
providers and a model on it), metered like any call (request-log rows with `source: "judge"`).

It runs after the batch completed, so it never delays it; it is safe to retry: rows already scored are
skipped, and a judge answer already stored is reused rather than bought again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import Session, col, select

from batchway import lifecycle
from batchway.contracts import ScoreResult
from batchway.pipeline.deps import Deps
from batchway.results.pricing import PriceBook
from batchway.results.scoring import JudgeScore, heuristic_score, judge_request, judge_sampled, parse_judge
from batchway.results.sink import BatchLabels, ResultSink
from batchway.storage.models import BatchRecord, FileRecord, Org, RequestLog
from batchway.tenancy import get_provider
from batchway.upstreams.base import RequestLine
from batchway.upstreams.fanout.adapter import FanoutUpstream
from batchway.upstreams.registry import UpstreamConfig
from batchway.usage import plan_of

log = logging.getLogger(__name__)

PAGE_ROWS = 200
JUDGE_CONCURRENCY = 8
OPENAI_API = "https://api.openai.com/v1"
JUDGE_PREFIX = "judge:"


@dataclass(frozen=True, slots=True)
class _Judge:
    upstream: FanoutUpstream
    model: str
    rate: float
    sink: ResultSink


def _setup(deps: Deps, batch: BatchRecord) -> tuple[bool, Org | None, float]:
    with Session(deps.engine, expire_on_commit=False) as session:
        org = session.get(Org, batch.org_id)
        plan = plan_of(session, org) if org else None
    if org is None or plan is None or not plan.feedback:
        return False, org, 0.0
    return True, org, plan.judge_sample_rate


def _judge(deps: Deps, batch: BatchRecord, org: Org, rate: float) -> _Judge | None:
    """The org's judge, if it named one the judge can call (an OpenAI-compatible chat API)."""
    if not (org.judge_provider and org.judge_model and rate > 0):
        return None
    with Session(deps.engine, expire_on_commit=False) as session:
        provider = get_provider(session, org.id, org.judge_provider)
    if provider is None or provider.kind not in ("openai", "fanout"):
        log.warning(
            "org %s: judge provider %s cannot judge (OpenAI-compatible chat needed)",
            org.name,
            org.judge_provider,
        )
        return None
    api_key = deps.box.open(provider.api_key)
    config = UpstreamConfig(kind="fanout", api_key=api_key, base_url=provider.base_url or OPENAI_API)
    upstream = deps.upstreams.get(config)
    assert isinstance(upstream, FanoutUpstream)
    labels = BatchLabels(
        org_id=org.id,
        batch_id=batch.id,
        provider=provider.name,
        endpoint="/v1/chat/completions",
        model=org.judge_model,
        session_id=batch.session_id,
        source="judge",
    )
    prices = PriceBook.load(deps.engine, provider.name, provider.kind)
    return _Judge(upstream, org.judge_model, rate, ResultSink(deps.engine, deps.blobs, labels, prices))


def _unscored(deps: Deps, batch_id: str) -> list[RequestLog]:
    with Session(deps.engine, expire_on_commit=False) as session:
        query = (
            select(RequestLog)
            .where(
                RequestLog.batch_id == batch_id,
                RequestLog.source == "batch",
                RequestLog.ok.is_(True),
                RequestLog.heuristic_score.is_(None),
            )
            .order_by(RequestLog.id)
            .limit(PAGE_ROWS)
        )
        return list(session.exec(query).all())


def _read_json(deps: Deps, key: str | None, offset: int | None, length: int | None) -> Any:
    if not key or offset is None or not length:
        return None
    with deps.blobs.open_read(key) as stream:
        stream.seek(offset)
        try:
            return orjson.loads(stream.read(length))
        except orjson.JSONDecodeError:
            return None


def _bodies(
    deps: Deps, batch: BatchRecord, rows: list[RequestLog]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each row's request body (from the input file) and response body (from its result chunk)."""
    with Session(deps.engine) as session:
        input_file = session.get(FileRecord, batch.input_file_id)
    pairs = []
    for row in rows:
        request = _read_json(
            deps, input_file.blob_key if input_file else None, row.input_offset, row.input_length
        )
        line = _read_json(deps, row.chunk_key, row.chunk_offset, row.chunk_length)
        response = (line or {}).get("response") or {}
        pairs.append(((request or {}).get("body") or {}, response.get("body") or {}))
    return pairs


def _stored_judgements(deps: Deps, batch_id: str, custom_ids: list[str]) -> dict[str, JudgeScore | None]:
    """Judge answers already stored by an earlier attempt, by the custom_id they judged."""
    if not custom_ids:
        return {}
    with Session(deps.engine) as session:
        rows = session.exec(
            select(RequestLog).where(
                RequestLog.batch_id == batch_id,
                col(RequestLog.custom_id).in_([JUDGE_PREFIX + cid for cid in custom_ids]),
            )
        ).all()
    found: dict[str, JudgeScore | None] = {}
    for row in rows:
        line = _read_json(deps, row.chunk_key, row.chunk_offset, row.chunk_length) or {}
        body = (line.get("response") or {}).get("body") or {}
        found[row.custom_id.removeprefix(JUDGE_PREFIX)] = parse_judge(body) if row.ok else None
    return found


def _save_scores(deps: Deps, scores: list[tuple[int, Any, JudgeScore | None]]) -> None:
    with Session(deps.engine) as session:
        for row_id, heuristic, judged in scores:
            row = session.get(RequestLog, row_id)
            if row is None:
                continue
            row.heuristic_score, row.heuristic_reasons = heuristic.score, list(heuristic.reasons)
            if judged is not None:
                row.judge_score, row.judge_reason = judged.score, judged.reason
            session.add(row)
        session.commit()


async def score_batch(deps: Deps, batch_id: str) -> ScoreResult:
    batch = await deps.blocking(lifecycle.load, deps.engine, batch_id)
    if batch.status != lifecycle.Status.COMPLETED or batch.endpoint != "/v1/chat/completions":
        return ScoreResult(scored=0, judged=0)
    enabled, org, rate = await deps.blocking(_setup, deps, batch)
    if not enabled or org is None:
        return ScoreResult(scored=0, judged=0)
    judge = await deps.blocking(_judge, deps, batch, org, rate)
    scored = judged = 0
    while rows := await deps.blocking(_unscored, deps, batch_id):
        pairs = await deps.blocking(_bodies, deps, batch, rows)
        sampled = [
            index
            for index, row in enumerate(rows)
            if judge and judge_sampled(batch_id, row.custom_id, judge.rate)
        ]
        verdicts = await _judge_rows(deps, batch_id, judge, rows, pairs, sampled) if judge else {}
        scores = [
            (row.id, heuristic_score(request, response), verdicts.get(index))
            for index, (row, (request, response)) in enumerate(zip(rows, pairs, strict=True))
        ]
        await deps.blocking(_save_scores, deps, scores)
        scored += len(scores)
        judged += sum(1 for verdict in verdicts.values() if verdict is not None)
    return ScoreResult(scored=scored, judged=judged)


async def _judge_rows(
    deps: Deps,
    batch_id: str,
    judge: _Judge,
    rows: list[RequestLog],
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    sampled: list[int],
) -> dict[int, JudgeScore | None]:
    stored = await deps.blocking(_stored_judgements, deps, batch_id, [rows[i].custom_id for i in sampled])
    verdicts: dict[int, JudgeScore | None] = {}
    room = asyncio.Semaphore(JUDGE_CONCURRENCY)

    async def grade(index: int) -> None:
        row = rows[index]
        if row.custom_id in stored:
            verdicts[index] = stored[row.custom_id]
            return
        request, response = pairs[index]
        body = judge_request(request, response, model=judge.model)
        async with room:
            result = await judge.upstream.execute(
                RequestLine(JUDGE_PREFIX + row.custom_id, row.line or 0, "/v1/chat/completions", body)
            )
        if result is not None:
            judge.sink.add(result, None)
            verdicts[index] = parse_judge(result.body or {}) if result.ok else None

    await asyncio.gather(*(grade(index) for index in sampled))
    await deps.blocking(judge.sink.flush)
    return verdicts
