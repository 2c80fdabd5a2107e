"""An org's webhook endpoint: where its batch events go, with the secret that signs them (generated here
and shown once)."""

from __future__ import annotations

from sqlmodel import Session, select

from batchway import tenancy
from batchway.clock import now
from batchway.secret_box import SecretBox
from batchway.storage.models import WebhookDelivery, WebhookEndpoint
from batchway.webhooks.delivery import unsupported_url_reason
from batchway.webhooks.signing import new_secret


def set_endpoint(session: Session, org_name: str, url: str, box: SecretBox) -> str:
    """Point the org's events at `url` with a new secret; returns the secret (its only showing)."""
    if reason := unsupported_url_reason(url):
        raise ValueError(reason)
    org = tenancy.get_org_by_name(session, org_name)
    secret = new_secret()
    sealed = box.seal(secret)
    assert sealed is not None
    endpoint = session.get(WebhookEndpoint, org.id) or WebhookEndpoint(
        org_id=org.id, url=url, secret=sealed, created_at=now()
    )
    endpoint.url, endpoint.secret = url, sealed  # stored encrypted, like upstream keys
    session.add(endpoint)
    session.commit()
    return secret


def remove_endpoint(session: Session, org_name: str) -> bool:
    org = tenancy.get_org_by_name(session, org_name)
    endpoint = session.get(WebhookEndpoint, org.id)
    if endpoint is None:
        return False
    session.delete(endpoint)
    session.commit()
    return True


def deliveries(session: Session, org_name: str, limit: int = 20) -> list[WebhookDelivery]:
    org = tenancy.get_org_by_name(session, org_name)
    query = (
        select(WebhookDelivery).where(WebhookDelivery.org_id == org.id).order_by(WebhookDelivery.id.desc())
    )
    return list(session.exec(query.limit(limit)).all())
