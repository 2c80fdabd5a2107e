"""Dashboard benchmark: how fast the requests page of a 50,000-line batch renders, on SQLite and PostgreSQL.

For each database it stores one completed 50,000-line batch exactly as the worker stores one (the input
file through `batchway.files.upload`, the batch row, then every result line through
`batchway.results.sink.ResultSink`: result chunk blobs plus one request-log row per line), with 10% of the
lines failed and two session ids, so the filters have something to find. No upstream runs: what is measured
is the page, not the batch. It then starts the API (with the dashboard) as its own process, signs in
through the login form, and times sequential GETs over loopback of each page below (`--requests` each,
after `--warmup` unmeasured ones): p50, p99 and max of the whole HTTP round trip.

PostgreSQL is measured twice: right after the rows were written (the planner has no statistics for them
yet, as in the minute before autovacuum analyzes a freshly written batch) and after `ANALYZE`.
`--batch-index` first adds an index on request-log (batch_id, id), which the schema does not have, to
measure what it would buy.

    .venv/bin/python bench/dashboard.py                        # SQLite and PostgreSQL, 200 requests a page
    .venv/bin/python bench/dashboard.py --db sqlite --lines 5000 --requests 50     # quick
    .venv/bin/python bench/dashboard.py --batch-index           # with an index on (batch_id, id)
    BATCHWAY_BENCH_PG=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/dashboard.py
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psycopg
from sqlalchemy import text
from sqlmodel import Session, select
from stack import _stop, bench_run

from batchway import files, tenancy
from batchway.batch_input import LineSpan
from batchway.results.sink import FLUSH_LINES, BatchLabels, ResultSink
from batchway.servers import free_port, wait_for_port
from batchway.settings import Settings
from batchway.storage.blobstore import make_blob_store
from batchway.storage.db import make_engine, migrate
from batchway.storage.models import BatchRecord, RequestLog
from batchway.upstreams.result_line import ResultLine, Usage

PG_ADMIN_URL = os.environ.get("BATCHWAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_MS = 300
REPO = Path(__file__).resolve().parent.parent
SERVER = """
import sys, uvicorn
from api.main import create_app
from api.dashboard import install_dashboard
app = create_app()
install_dashboard(app)  # idempotent once create_app installs it
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@dataclass
class Seeded:
    key: str
    batch_id: str
    middle_line_id: str  # a line half way down the batch: the anchor of a deep page
    seconds: float


def seed(settings: Settings, lines: int) -> Seeded:
    """One completed batch of `lines` lines, stored through the same code the worker uses."""
    started = time.perf_counter()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    blobs = make_blob_store(settings.resolved_blob_url)
    data, spans, offset = io.BytesIO(), [], 0
    for index in range(lines):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Summarize document {index}."}],
        }
        raw = orjson.dumps(
            {"custom_id": f"doc-{index}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
        spans.append(LineSpan(index + 1, offset, len(raw) + 1))
        offset += len(raw) + 1
        data.write(raw + b"\n")
    data.seek(0)
    batch_id = f"batch_{uuid.uuid4().hex}"
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.create_org(session, f"bench-{uuid.uuid4().hex[:8]}")
        key = tenancy.create_api_key(session, org)
        upload = files.upload(
            session, blobs, settings, org_id=org.id, filename="in.jsonl", purpose="batch", source=data
        )
        failed = lines // 10
        session.add(
            BatchRecord(
                id=batch_id,
                org_id=org.id,
                provider="openai",
                endpoint="/v1/chat/completions",
                input_file_id=upload.id,
                completion_window="24h",
                status="completed",
                model="gpt-4o-mini",
                created_at=int(time.time()) - 3600,
                created_ns=time.time_ns(),
                completed_at=int(time.time()),
                total=lines,
                completed=lines - failed,
                failed=failed,
                usage={"total_tokens": (lines - failed) * 60},
            )
        )
        session.commit()
    for session_id in ("sess-even", "sess-odd"):
        labels = BatchLabels(org.id, batch_id, "openai", "/v1/chat/completions", "gpt-4o-mini", session_id)
        sink = ResultSink(engine, blobs, labels)
        for index in range(0 if session_id == "sess-even" else 1, lines, 2):
            sink.add(result_line(index), spans[index])
            if sink.pending >= FLUSH_LINES:
                sink.flush()
        sink.flush()
    with Session(engine) as session:
        ids = session.exec(
            select(RequestLog.line_id).where(RequestLog.batch_id == batch_id).order_by(RequestLog.id)
        ).all()
    engine.dispose()
    return Seeded(key, batch_id, ids[len(ids) // 2], time.perf_counter() - started)


def result_line(index: int) -> ResultLine:
    if index % 10 == 3:
        return ResultLine(
            f"doc-{index}",
            status_code=500,
            body={"error": {"message": "The server had an error.", "type": "server_error"}},
            latency_ms=400,
            model="gpt-4o-mini",
        )
    body = {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Summary of {index}."}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
    }
    return ResultLine(
        f"doc-{index}",
        status_code=200,
        body=body,
        usage=Usage(40, 20, 60),
        latency_ms=800,
        model="gpt-4o-mini",
    )


@contextmanager
def api_process(settings: Settings, work: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "BATCHWAY_DATA_DIR": str(settings.data_dir),
        "BATCHWAY_DATABASE_URL": settings.resolved_database_url,
    }
    log = (work / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
    )
    try:
        wait_for_port("127.0.0.1", port, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc, own_group=False)
        log.close()


def signed_in(base_url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60)
    form = client.get("/dashboard/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)[1]  # type: ignore[index]
    response = client.post("/dashboard/login", data={"api_key": key, "csrf_token": token})
    if "batchway_session" not in client.cookies:
        raise RuntimeError(f"could not sign in: HTTP {response.status_code}")
    return client


def timed(client: httpx.Client, path: str, count: int, warmup: int) -> list[float]:
    times = []
    for attempt in range(warmup + count):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}")
        if attempt >= warmup:
            times.append(elapsed)
    return sorted(times)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def pages(seeded: Seeded, requests: int) -> list[tuple[str, str, int]]:
    """(what, path, how many times) for every page measured."""
    batch = seeded.batch_id
    return [
        ("requests: batch, first page", f"/dashboard/requests?batch_id={batch}", requests),
        (
            "requests: batch, page half way down",
            f"/dashboard/requests?batch_id={batch}&after={seeded.middle_line_id}",
            requests,
        ),
        ("requests: batch + status=error", f"/dashboard/requests?batch_id={batch}&status=error", requests),
        (
            "requests: batch + model + session",
            f"/dashboard/requests?batch_id={batch}&model=gpt-4o-mini&session_id=sess-odd",
            requests,
        ),
        ("requests: no filter, 200 a page", "/dashboard/requests?limit=200", requests),
        ("one request (detail)", "/dashboard/requests/{first}", requests),
        ("batches", "/dashboard/batches", requests),
        ("usage (this month)", "/dashboard/usage", max(10, requests // 5)),
    ]


def measure(label: str, base_url: str, seeded: Seeded, args: argparse.Namespace) -> list[list[str]]:
    client = signed_in(base_url, seeded.key)
    first = re.search(
        r'href="/dashboard/requests/(batch_req_[0-9a-f]+)"',
        client.get(f"/dashboard/requests?batch_id={seeded.batch_id}").text,
    )[1]  # type: ignore[index]
    rows = []
    for what, path, count in pages(seeded, args.requests):
        path = path.replace("{first}", first)
        times = timed(client, path, count, args.warmup)
        ms = [percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000, times[-1] * 1000]
        rows.append([label, what, str(count)] + [f"{value:.1f}" for value in ms])
        print(f"  {what}: p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms", flush=True)
    client.close()
    return rows


@contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{work / 'bench.db'}"
        return
    name = f"batchway_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_batch_index(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("CREATE INDEX ix_bench_requestlog_batch_id_id ON requestlog (batch_id, id)"))
        conn.commit()
    engine.dispose()


def analyze(url: str) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()


def run(kind: str, args: argparse.Namespace, work: Path) -> list[list[str]]:
    results: list[list[str]] = []
    with database(kind, work) as url:
        settings = Settings(data_dir=work / "data", database_url=url)
        print(f"{kind}: storing a {args.lines:,}-line batch ...", flush=True)
        seeded = seed(settings, args.lines)
        print(f"{kind}: stored in {seeded.seconds:.1f} s", flush=True)
        if args.batch_index:
            add_batch_index(url)
        with api_process(settings, work) as base_url:
            suffix = ", index on (batch_id, id)" if args.batch_index else ""
            if kind == "sqlite":
                results += measure(f"SQLite{suffix}", base_url, seeded, args)
            else:
                results += measure(
                    f"PostgreSQL, fresh rows (no statistics yet){suffix}", base_url, seeded, args
                )
                analyze(url)
                results += measure(f"PostgreSQL, after ANALYZE{suffix}", base_url, seeded, args)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--lines", type=int, default=50_000, help="lines in the batch (default 50,000)")
    parser.add_argument("--requests", type=int, default=200, help="measured GETs per page (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured GETs first (default 5)")
    parser.add_argument("--batch-index", action="store_true", help="add an index on (batch_id, id) first")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (data, API log)")
    args = parser.parse_args()
    with bench_run("dashboard", args.keep) as work:
        rows: list[list[str]] = []
        for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
            (work / kind).mkdir()
            rows += run(kind, args, work / kind)
        print(f"\n{args.lines:,}-line batch; sequential GETs over loopback; target {TARGET_MS} ms\n")
        print("| database | page | GETs | p50 ms | p99 ms | max ms |")
        print("|---|---|---:|---:|---:|---:|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
