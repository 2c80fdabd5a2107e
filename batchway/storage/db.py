"""Engine and sessions. SQLite by default, PostgreSQL by URL; nothing above this module knows which."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

from batchway.storage import models  # noqa: F401  (registers the tables on SQLModel.metadata)

MIGRATION_LOCK_KEY = 0x62617463  # any constant shared by every batchway process ("batc")
# Sync routes run on up to 40 threadpool threads; keep a connection for each instead of queueing.
POOL_SIZE, POOL_OVERFLOW = 20, 20


def load_json(text: str | bytes) -> Any:
    """JSON columns are decoded on every read (five per batch row): orjson is several times faster. The
    standard module takes over for what orjson refuses (NaN, written by `json.dumps` if ever stored)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _driver_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    url = _driver_url(url)
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            json_deserializer=load_json,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        json_deserializer=load_json,
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while the worker writes (two processes share the file in `batchway dev`).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration. API and worker processes both call this at start;
    a lock makes concurrent starts take turns."""
    with _migration_lock(engine), engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def insert_ignoring_conflicts(
    session: Session,
    model: type[Any],
    rows: list[dict[str, Any]],
    conflict_columns: list[str],
    *,
    returning: str | None = None,
) -> list[Any]:
    """INSERT rows, skipping any that collide on `conflict_columns` (first writer wins); returns the
    `returning` column (default: the first conflict column) of the rows inserted. One executemany of one
    cached statement (compiling a many-row VALUES clause costs more than running it); call it with
    bounded batches."""
    if not rows:
        return []
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(model)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(getattr(model, returning or conflict_columns[0]))  # what was inserted, on every driver
    )
    return list(session.connection().execute(statement, rows).scalars().all())
