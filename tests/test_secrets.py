"""Upstream keys and webhook secrets are encrypted at rest under a master key that can be rotated, and
nothing starts without one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select
from typer.testing import CliRunner

from batchway import tenancy, webhook_endpoints
from batchway.cli import app
from batchway.secret_box import SecretBox, SecretKeyMissing, ensure_dev_key, key_file, load_box
from batchway.secret_rotation import rotate_all
from batchway.settings import Settings, get_settings
from batchway.storage.db import make_engine, migrate
from batchway.storage.models import ProviderConfig, WebhookEndpoint
from worker import build_deps

UPSTREAM_KEY = "sk-live-do-not-leak-0123456789"


def dump(database_url: str) -> str:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = [
            str(row)
            for table in ("providerconfig", "webhookendpoint")
            for row in connection.exec_driver_sql(f"SELECT * FROM {table}").all()
        ]
    engine.dispose()
    return "\n".join(rows)


def test_keys_are_encrypted_at_rest_and_rotate(own_database_url: str) -> None:
    # Its own database: rotation re-encrypts every row, and other tests' rows use other master keys.
    database_url = own_database_url
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    engine = make_engine(database_url)
    migrate(engine)
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.create_org(session, f"sec-{os.getpid()}-{len(old)}-{database_url[-6:]}")
        tenancy.set_provider(
            session, org, "openai", kind="openai", api_key=UPSTREAM_KEY, base_url=None, box=SecretBox([old])
        )
        secret = webhook_endpoints.set_endpoint(
            session, org.name, "https://example.com/hook", SecretBox([old])
        )
    raw = dump(database_url)
    assert UPSTREAM_KEY not in raw and secret not in raw and "enc:v1:" in raw

    with Session(engine) as session:
        assert rotate_all(session, SecretBox([new, old])) >= 2  # the new key first; the old still decrypts
    with Session(engine) as session:
        provider = session.exec(select(ProviderConfig).where(ProviderConfig.org_id == org.id)).one()
        endpoint = session.get(WebhookEndpoint, org.id)
    assert SecretBox([new]).open(provider.api_key) == UPSTREAM_KEY
    assert SecretBox([new]).open(endpoint.secret) == secret
    with pytest.raises(SecretKeyMissing):
        SecretBox([old]).open(provider.api_key)  # the old key is no longer needed, nor enough
    engine.dispose()


def test_nothing_starts_without_a_master_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=None)
    with pytest.raises(SecretKeyMissing, match="BATCHWAY_SECRET_KEY"):
        load_box(settings)
    with pytest.raises(SecretKeyMissing):
        build_deps(settings)
    with pytest.raises(SecretKeyMissing):
        SecretBox(["not a fernet key"])
    ensure_dev_key(settings)  # what `batchway dev` does in its data dir
    assert stat.S_IMODE(key_file(settings).stat().st_mode) == 0o600
    assert load_box(settings).open(load_box(settings).seal("x")) == "x"


def test_the_cli_never_prints_an_upstream_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BATCHWAY_SECRET_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["orgs", "create", "acme"]).exit_code == 0
        result = runner.invoke(
            app, ["providers", "set", "openai", "--org", "acme", "--api-key", UPSTREAM_KEY]
        )
        assert result.exit_code == 0, result.output
        listed = runner.invoke(app, ["providers", "list", "--org", "acme"])
        assert "openai" in listed.output and UPSTREAM_KEY not in listed.output
        monkeypatch.delenv("BATCHWAY_SECRET_KEY")
        get_settings.cache_clear()
        refused = runner.invoke(app, ["providers", "set", "openai", "--org", "acme", "--api-key", "k"])
        assert refused.exit_code == 1 and "BATCHWAY_SECRET_KEY" in refused.output
    finally:
        get_settings.cache_clear()
