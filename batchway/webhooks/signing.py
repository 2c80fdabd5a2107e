"""Standard Webhooks signatures (https://www.standardwebhooks.com), as the `openai` SDK verifies them.

The secret is `whsec_` + base64 of the key. The SDK base64-decodes only secrets carrying that prefix
(it uses any other string's raw bytes as the key), so operators must be shown, and must paste, the
whole `whsec_...` string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_KEY_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_KEY_BYTES)).decode()


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers that let a receiver check `body` came from us, unaltered, at `timestamp`.

    `msg_id` must stay the same across retries (receivers dedupe on it); `timestamp` must be the time
    of this attempt, because receivers refuse timestamps more than 5 minutes from their clock."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("the webhook secret is empty")
    return key
