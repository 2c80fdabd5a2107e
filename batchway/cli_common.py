"""What every `batchway` subcommand shares: the --data-dir option, settings, a session, failing cleanly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from batchway.secret_box import SecretBox, SecretKeyMissing, load_box
from batchway.settings import Settings, get_settings
from batchway.storage.db import make_engine, migrate

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Overrides BATCHWAY_DATA_DIR.")]


def settings_for(data_dir: Path | None = None) -> Settings:
    if data_dir is not None:
        os.environ["BATCHWAY_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()
    return get_settings()


def open_session(settings: Settings) -> Session:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return Session(engine, expire_on_commit=False)


def fail(message: str) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(1)


def secret_box(settings: Settings) -> SecretBox:
    try:
        return load_box(settings)
    except SecretKeyMissing as exc:
        fail(str(exc))
        raise
