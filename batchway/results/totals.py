"""A batch's counts and usage, computed in one place: from its stored lines (the request log)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, select

from batchway.storage.models import RequestLog
from batchway.upstreams.result_line import Usage


@dataclass(slots=True)
class LineTotals:
    completed: int
    failed: int
    usage: Usage
    cost_micros: int = 0

    @property
    def done(self) -> int:
        return self.completed + self.failed

    def batch_usage(self) -> dict[str, Any]:
        """The Batch object's `usage` (OpenAI's shape)."""
        return batch_usage(self.usage)


def batch_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def line_totals(session: Session, batch_id: str) -> LineTotals:
    log = RequestLog
    row = session.exec(
        select(
            func.coalesce(func.sum(case((log.ok, 1), else_=0)), 0),
            func.count(),
            func.coalesce(func.sum(log.prompt_tokens), 0),
            func.coalesce(func.sum(log.completion_tokens), 0),
            func.coalesce(func.sum(log.total_tokens), 0),
            func.coalesce(func.sum(log.cached_tokens), 0),
            func.coalesce(func.sum(log.reasoning_tokens), 0),
            func.coalesce(func.sum(log.cost_micros), 0),
        ).where(log.batch_id == batch_id, log.source == "batch")  # the judge's calls are not the batch's
    ).one()
    ok, total, prompt, completion, all_tokens, cached, reasoning, cost = (int(value) for value in row)
    return LineTotals(
        completed=ok,
        failed=total - ok,
        usage=Usage(prompt, completion, all_tokens, cached, reasoning),
        cost_micros=cost,
    )
