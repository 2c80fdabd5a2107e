"""The key that signs dashboard session cookies (and derives their CSRF tokens).

`BATCHWAY_SESSION_SECRET` (the `session_secret` setting): one or more secrets, comma separated; the
first signs, every one verifies, so a secret can be rotated without signing everybody out (put the new
one first, drop the old one after the session lifetime). Without it, a key file in the data dir
(`session.key`, mode 0600, created on first use), like `batchway dev`'s master key. If even that cannot
be written, a random key for this process only: sessions then end with the process and do not carry
over to other API processes, which is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from batchway.settings import Settings

log = logging.getLogger("batchway.dashboard")
KEY_FILE_NAME = "session.key"
MIN_SECRET_CHARS = 16


def _configured(settings: Settings) -> list[str]:
    value = getattr(settings, "session_secret", None)  # a setting some deployments do not have yet
    if value is None:
        return []
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return [part.strip() for part in raw.split(",") if part.strip()]


def _from_key_file(path: Path) -> str | None:
    """The key file's secret, creating the file (0600) if there is none; None if it cannot be had."""
    try:
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: API processes starting together
        # never read a half-written file, and the first link wins.
        secret = secrets.token_urlsafe(48)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secret)
            os.link(draft, path)
        except FileExistsError:
            return path.read_text().strip() or None
        finally:
            draft.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot read or create the dashboard session key file %s: %s", path, exc)
        return None
    log.info("created the dashboard session key file %s", path)
    return secret


def session_secrets(settings: Settings) -> list[str]:
    """The secrets, the signing one first."""
    configured = _configured(settings)
    if configured:
        if any(len(secret) < MIN_SECRET_CHARS for secret in configured):
            raise ValueError(
                f"BATCHWAY_SESSION_SECRET: every secret needs at least {MIN_SECRET_CHARS} characters"
            )
        return configured
    from_file = _from_key_file(settings.data_dir / KEY_FILE_NAME)
    if from_file:
        return [from_file]
    log.warning(
        "BATCHWAY_SESSION_SECRET is not set and no key file could be written: dashboard sessions are signed "
        "with a random key of this process and end when it stops"
    )
    return [secrets.token_urlsafe(48)]
