"""Feedback scores aggregated per provider and model: the signal a router uses to pick upstreams."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from batchway.storage.models import RequestLog
from batchway.usage import month_bounds


def summary(session: Session, org_id: str, month: str | None) -> dict[str, Any]:
    month, start, end = month_bounds(month)
    log = RequestLog
    rows = session.exec(
        select(
            log.provider,
            log.model,
            func.count(log.heuristic_score),
            func.avg(log.heuristic_score),
            func.count(log.judge_score),
            func.avg(log.judge_score),
        )
        .where(
            log.org_id == org_id,
            log.source == "batch",
            log.heuristic_score.is_not(None),
            log.created_at >= start,
            log.created_at < end,
        )
        .group_by(log.provider, log.model)
        .order_by(log.provider, log.model)
    ).all()
    return {
        "object": "list",
        "month": month,
        "data": [
            {
                "provider": provider,
                "model": model,
                "scored": int(scored),
                "mean_heuristic": None if mean_heuristic is None else round(float(mean_heuristic), 4),
                "judged": int(judged),
                "mean_judge": None if mean_judge is None else round(float(mean_judge), 4),
            }
            for provider, model, scored, mean_heuristic, judged, mean_judge in rows
        ],
    }
