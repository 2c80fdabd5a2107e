"""`batchway temporal setup`: what a Temporal cluster needs before batchway runs on it, done idempotently:
the namespace (optionally; self-hosted clusters) and batchway's search attributes (an unregistered one
makes every batch workflow task fail and retry forever). Temporal Cloud registers search attributes in
its own console or with `tcld`; this command then only checks them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    ListSearchAttributesResponse,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from batchway.contracts import ALL_SEARCH_ATTRIBUTES

NAMESPACE_WAIT_ATTEMPTS = 30


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> bool:
    """Create the namespace unless it exists; returns whether it was created."""
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
        return False
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    period = Duration()
    period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=period)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register batchway's search attributes that are missing; returns the names it added."""
    listed = await _list_search_attributes(client, namespace)
    present = set(listed.custom_attributes) | set(listed.system_attributes)
    missing = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_SEARCH_ATTRIBUTES}
    missing = {name: kind for name, kind in missing.items() if name not in present}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
    return sorted(missing)


async def _list_search_attributes(client: Client, namespace: str) -> ListSearchAttributesResponse:
    # A namespace just registered takes a few seconds to be known everywhere in the cluster.
    for attempt in range(NAMESPACE_WAIT_ATTEMPTS):
        try:
            return await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or attempt == NAMESPACE_WAIT_ATTEMPTS - 1:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")
