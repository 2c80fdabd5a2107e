"""`/v1/usage` (the org's month: requests, tokens and cost, by model, provider and day, batch and judge
traffic apart) and `/v1/scores` (feedback scores per provider and model)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import OrgDep, SessionDep
from api.responses import JSON
from batchway import scores, usage

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage")
def monthly_usage(org: OrgDep, session: SessionDep, month: str | None = None) -> JSON:
    return JSON(usage.monthly_usage(session, org, month))


@router.get("/scores")
def score_summary(org: OrgDep, session: SessionDep, month: str | None = None) -> JSON:
    return JSON(scores.summary(session, org.id, month))
