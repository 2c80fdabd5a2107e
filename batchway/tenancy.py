"""Orgs, their API keys (stored hashed, shown once) and the upstream providers they may use."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from batchway import ids
from batchway.clock import now
from batchway.errors import bad_request, unauthorized
from batchway.ids import looks_like_id
from batchway.secret_box import SecretBox
from batchway.storage.models import ApiKey, Org, ProviderConfig
from batchway.upstreams.registry import get_kind

PROVIDER_HEADER = "batchway-provider"
LAST_USED_RESOLUTION_SECONDS = 60


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_org(session: Session, name: str) -> Org:
    if session.exec(select(Org).where(Org.name == name)).first():
        raise ValueError(f"an org named {name!r} already exists")
    org = Org(id=ids.new_org_id(), name=name, created_at=now())
    session.add(org)
    session.commit()
    return org


def get_org_by_name(session: Session, name: str) -> Org:
    org = session.exec(select(Org).where(Org.name == name)).first()
    if org is None:
        raise ValueError(f"no org named {name!r}")
    return org


def create_api_key(session: Session, org: Org) -> str:
    """Create a key for `org` and return it: the only time it is ever visible."""
    key = ids.new_api_key()
    session.add(ApiKey(org_id=org.id, key_hash=hash_key(key), prefix=key[:7], created_at=now()))
    session.commit()
    return key


def org_for_key(session: Session, key: str | None) -> Org:
    """The org a live (not revoked) key belongs to; 401 otherwise. Notes the key's use, to the minute."""
    if not key:
        raise unauthorized(
            "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'."
        )
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    org = session.get(Org, row.org_id) if row and row.revoked_at is None else None
    if row is None or org is None:
        raise unauthorized(f"Incorrect API key provided: {key[:7]}****.")
    if row.last_used_at is None or row.last_used_at < now() - LAST_USED_RESOLUTION_SECONDS:
        row.last_used_at = now()
        session.add(row)
        session.commit()
    return org


def list_api_keys(session: Session, org: Org) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).where(ApiKey.org_id == org.id).order_by(ApiKey.id)).all())


def revoke_api_key(session: Session, org: Org, key_id: int) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None or row.org_id != org.id:
        raise ValueError(f"org {org.name!r} has no key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = now()
        session.add(row)
        session.commit()
    return row


def revocation_marker(session: Session) -> tuple[int, int]:
    """Changes whenever a key is revoked: the newest revocation and how many there are (cheap, indexed)."""
    newest, count = session.exec(select(func.max(ApiKey.revoked_at), func.count(ApiKey.revoked_at))).one()
    return int(newest or 0), int(count)


def set_provider(
    session: Session,
    org: Org,
    name: str,
    *,
    kind: str,
    api_key: str | None,
    base_url: str | None,
    options: dict[str, Any] | None = None,
    box: SecretBox,
) -> ProviderConfig:
    if not looks_like_id(name):
        raise ValueError(f"provider names use letters, digits, '-' and '_' only: {name!r}")
    provider_kind = get_kind(kind)
    checked = provider_kind.check_options(options)
    if provider_kind.style == "executed" and not base_url:
        raise ValueError(f"a {kind} provider needs --base-url (the upstream's API root, e.g. http://host/v1)")
    row = session.exec(
        select(ProviderConfig).where(ProviderConfig.org_id == org.id, ProviderConfig.name == name)
    ).first()
    if row is None:
        row = ProviderConfig(org_id=org.id, name=name, kind=kind, created_at=now())
    # The upstream key is stored encrypted: a copy of the database must not expose it.
    row.kind, row.api_key, row.base_url, row.options = kind, box.seal(api_key), base_url, checked or None
    session.add(row)
    session.commit()
    return row


def delete_provider(session: Session, org_id: str, name: str) -> bool:
    row = get_provider(session, org_id, name)
    if row is None:
        return False
    session.delete(row)
    session.commit()
    return True


def list_providers(session: Session, org_id: str) -> list[ProviderConfig]:
    return list(
        session.exec(
            select(ProviderConfig).where(ProviderConfig.org_id == org_id).order_by(ProviderConfig.name)
        ).all()
    )


def get_provider(session: Session, org_id: str, name: str) -> ProviderConfig | None:
    return session.exec(
        select(ProviderConfig).where(ProviderConfig.org_id == org_id, ProviderConfig.name == name)
    ).first()


def resolve_provider(session: Session, org_id: str, requested: str | None) -> ProviderConfig:
    """The `batchway-provider` header if given, else the org's single provider."""
    if requested:
        provider = get_provider(session, org_id, requested) if looks_like_id(requested) else None
        if provider is None:
            raise bad_request(
                f"Provider '{requested}' is not configured for your organization.", param=PROVIDER_HEADER
            )
        return provider
    providers = list_providers(session, org_id)
    if not providers:
        raise bad_request(
            "No upstream provider is configured for your organization; ask an operator to run "
            "`batchway providers set`.",
            param=PROVIDER_HEADER,
        )
    if len(providers) > 1:
        names = ", ".join(p.name for p in providers)
        raise bad_request(
            f"Your organization has several providers ({names}); choose one with the "
            f"'{PROVIDER_HEADER}' header.",
            param=PROVIDER_HEADER,
        )
    return providers[0]
