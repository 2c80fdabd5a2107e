"""Connecting to Temporal the same way everywhere (same data converter in API, worker and tests): a local
dev server, a self-hosted cluster (plain or mTLS), or Temporal Cloud (mTLS or an API key)."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from batchway.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """mTLS when a client certificate is configured, plain TLS when asked (or with an API key), else none."""
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if cert or key:
        if not (cert and key):
            raise ValueError("BATCHWAY_TEMPORAL_TLS_CERT and BATCHWAY_TEMPORAL_TLS_KEY go together")
        return TLSConfig(
            client_cert=Path(cert).read_bytes(),
            client_private_key=Path(key).read_bytes(),
            server_root_ca_cert=Path(ca).read_bytes() if ca else None,
            domain=settings.temporal_tls_server_name,
        )
    if ca:
        return TLSConfig(server_root_ca_cert=Path(ca).read_bytes(), domain=settings.temporal_tls_server_name)
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect(settings: Settings) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key,
    )
