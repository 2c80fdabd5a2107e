"""Running on a cluster batchway did not start: `batchway temporal setup` prepares it (idempotently), and
connection settings for secured clusters (mTLS, API keys) turn into the right TLS configuration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from batchway.cli import app
from batchway.contracts import ALL_SEARCH_ATTRIBUTES
from batchway.servers import temporal_binary
from batchway.settings import Settings, get_settings
from batchway.temporal_client import tls_config


async def test_setup_creates_the_namespace_and_search_attributes_once(monkeypatch, tmp_path: Path) -> None:
    async with await WorkflowEnvironment.start_local(  # a bare cluster: no batchway search attributes
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    ) as env:
        address = env.client.service_client.config.target_host
        monkeypatch.setenv("BATCHWAY_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("BATCHWAY_TEMPORAL_ADDRESS", address)
        monkeypatch.setenv("BATCHWAY_TEMPORAL_NAMESPACE", "batchway-prod")
        get_settings.cache_clear()
        runner = CliRunner()
        first = await _invoke(runner, ["temporal", "setup", "--create-namespace"])
        assert "namespace batchway-prod created" in first
        assert all(key.name in first for key in ALL_SEARCH_ATTRIBUTES)
        again = await _invoke(runner, ["temporal", "setup", "--create-namespace"])
        assert "created" not in again and "all present" in again
        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="batchway-prod")
        )
        assert {key.name for key in ALL_SEARCH_ATTRIBUTES} <= set(listed.custom_attributes)
    get_settings.cache_clear()


async def _invoke(runner: CliRunner, args: list[str]) -> str:
    import asyncio

    result = await asyncio.to_thread(runner.invoke, app, args)  # the command runs its own event loop
    assert result.exit_code == 0, result.output
    return result.output


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchway-worker")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_secured_cluster_settings(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    mtls = tls_config(
        Settings(temporal_tls_cert=str(cert), temporal_tls_key=str(key), temporal_tls_ca=str(cert))
    )
    assert isinstance(mtls, TLSConfig)
    assert mtls.client_cert == cert.read_bytes() and mtls.client_private_key == key.read_bytes()
    assert mtls.server_root_ca_cert == cert.read_bytes()
    with pytest.raises(ValueError, match="go together"):
        tls_config(Settings(temporal_tls_cert=str(cert)))
    assert tls_config(Settings(temporal_api_key="cloud-key")) is True  # an API key implies TLS
    assert tls_config(Settings(temporal_tls=True)) is True
    assert tls_config(Settings()) is False
