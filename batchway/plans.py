"""Plans (a monthly token cap, whether batches get feedback scores) and what an org is on."""

from __future__ import annotations

from sqlmodel import Session, select

from batchway import tenancy
from batchway.clock import now
from batchway.storage.models import Org, Plan


def set_plan(
    session: Session,
    name: str,
    *,
    monthly_token_cap: int | None,
    feedback: bool,
    judge_sample_rate: float,
) -> Plan:
    if monthly_token_cap is not None and monthly_token_cap < 0:
        raise ValueError("the monthly token cap must be positive")
    if not 0 <= judge_sample_rate <= 1:
        raise ValueError("the judge sample rate is a fraction between 0 and 1")
    plan = session.get(Plan, name) or Plan(name=name, created_at=now())
    plan.monthly_token_cap, plan.feedback, plan.judge_sample_rate = (
        monthly_token_cap,
        feedback,
        judge_sample_rate,
    )
    session.add(plan)
    session.commit()
    return plan


def list_plans(session: Session) -> list[Plan]:
    return list(session.exec(select(Plan).order_by(Plan.name)).all())


def set_org(
    session: Session,
    org_name: str,
    *,
    plan: str | None = None,
    judge_provider: str | None = None,
    judge_model: str | None = None,
) -> Org:
    """Put an org on a plan and/or name its judge (one of its providers, and a model on it)."""
    org = tenancy.get_org_by_name(session, org_name)
    if plan is not None:
        if session.get(Plan, plan) is None:
            raise ValueError(f"no plan named {plan!r}")
        org.plan = plan
    if judge_provider is not None:
        if tenancy.get_provider(session, org.id, judge_provider) is None:
            raise ValueError(f"org {org_name!r} has no provider named {judge_provider!r}")
        org.judge_provider = judge_provider
    if judge_model is not None:
        org.judge_model = judge_model
    session.add(org)
    session.commit()
    return org
