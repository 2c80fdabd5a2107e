"""Re-encrypting every stored secret under the current master key (`batchway secrets rotate`)."""

from __future__ import annotations

from sqlmodel import Session, select

from batchway.secret_box import SecretBox
from batchway.storage.models import ProviderConfig, WebhookEndpoint


def rotate_all(session: Session, box: SecretBox) -> int:
    count = 0
    for provider in session.exec(select(ProviderConfig)).all():
        if provider.api_key is not None:
            provider.api_key = box.rotate(provider.api_key)
            session.add(provider)
            count += 1
    for endpoint in session.exec(select(WebhookEndpoint)).all():
        endpoint.secret = box.rotate(endpoint.secret) or endpoint.secret
        session.add(endpoint)
        count += 1
    session.commit()
    return count
