"""Secrets at rest: upstream API keys and webhook signing secrets are stored encrypted (Fernet, from
`cryptography`), so a copy of the database (a backup, a replica, the SQLite file) exposes none of them.

The master key comes from `BATCHWAY_SECRET_KEY` (one or more Fernet keys, comma separated: the first
encrypts, every one decrypts, so a key can be rotated: put the new key first, run
`batchway secrets rotate`, then drop the old one), or from the key file `batchway dev` creates in its
data dir (mode 0600). Processes refuse to start without one.

Stored values look like `enc:v1:<fernet token>`; a value without the prefix (stored before encryption
existed) is read as is and encrypted by the next rotation.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from batchway.settings import Settings

PREFIX = "enc:v1:"
KEY_FILE_NAME = "secret.key"


class SecretKeyMissing(RuntimeError):
    pass


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyMissing("no secret key given")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except ValueError as exc:
            raise SecretKeyMissing(f"BATCHWAY_SECRET_KEY is not a valid Fernet key: {exc}") from None

    def seal(self, plain: str | None) -> str | None:
        if plain is None:
            return None
        return PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretKeyMissing(
                "a stored secret was encrypted with a key that is not configured"
            ) from None

    def rotate(self, stored: str | None) -> str | None:
        """The value encrypted under the first key (plaintext values get encrypted)."""
        if stored is None:
            return None
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        token = self._fernet.rotate(stored.removeprefix(PREFIX).encode())
        return PREFIX + token.decode()


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE_NAME


def load_box(settings: Settings) -> SecretBox:
    """The box for this deployment's master key(s); `SecretKeyMissing` says how to set one."""
    if settings.secret_key:
        return SecretBox(settings.secret_key.get_secret_value().split(","))
    path = key_file(settings)
    if path.exists():
        return SecretBox(path.read_text().split(","))
    raise SecretKeyMissing(
        "BATCHWAY_SECRET_KEY is not set: batchway encrypts upstream keys at rest and needs a master key. "
        "Generate one with `python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`."
    )


def ensure_dev_key(settings: Settings) -> None:
    """`batchway dev` keeps its master key in its data dir (readable by its owner only)."""
    path = key_file(settings)
    if settings.secret_key or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())
