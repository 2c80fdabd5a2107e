"""The web dashboard over real HTTP: sign-in (valid, invalid and revoked keys; cookie flags; expiry),
CSRF refusals, the requests page's filters and paging in the URL on SQLite and PostgreSQL, org isolation
("not found", never another org's data), a request's detail (bodies, usage, redacted headers) from a real
batch, and the usage page."""

from __future__ import annotations

import io
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import itsdangerous.timed
import orjson
import pytest
from sqlmodel import Session, select

from api.dashboard import install_dashboard
from api.dashboard.guard import safe_next
from api.dashboard.session import KEY_RECHECK_SECONDS, SESSION_SECONDS, SessionSigner
from api.dashboard.session_secret import KEY_FILE_NAME, session_secrets
from api.dashboard.svg import nice_ticks
from api.main import create_app
from batchway import dashboard_queries, files, plans, tenancy, usage
from batchway.batch_input import LineSpan
from batchway.results.sink import BatchLabels, ResultSink
from batchway.settings import Settings
from batchway.storage.blobstore import make_blob_store
from batchway.storage.db import make_engine, migrate
from batchway.storage.models import ApiKey, BatchRecord, RequestLog
from batchway.upstreams.result_line import ResultLine, Usage
from tests.batch_helpers import chat_line, submit, wait_for
from tests.conftest import create_org
from tests.servers import serve_in_thread

ROW_LINK = re.compile(r'class="mono row-link" href="/dashboard/requests/(batch_req_[0-9a-f]+)">([^<]+)</a>')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- servers and helpers -------------------------------------------------------------------------------


@contextmanager
def serve_dashboard(settings: Settings) -> Iterator[str]:
    """The API app with the dashboard installed, over real HTTP; yields the base URL (no /v1)."""
    app = create_app(settings)
    install_dashboard(app)  # idempotent: harmless once create_app installs it itself
    with serve_in_thread(app) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def start_dashboard(base_settings: Settings) -> Iterator[Callable[..., str]]:
    started: dict[str, str] = {}
    with ExitStack() as stack:

        def start(**overrides: object) -> str:
            key = repr(sorted(overrides.items()))
            if key not in started:
                started[key] = stack.enter_context(
                    serve_dashboard(base_settings.model_copy(update=overrides))
                )
            return started[key]

        yield start


@dataclass
class Deployment:
    """A dashboard server and the database behind it."""

    url: str
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, base_settings: Settings, start_dashboard) -> Deployment:
    if request.param == "sqlite":
        return Deployment(start_dashboard(), base_settings)
    url = request.getfixturevalue("postgres_url")
    return Deployment(
        start_dashboard(database_url=url), base_settings.model_copy(update={"database_url": url})
    )


@pytest.fixture
def sqlite_deployment(base_settings: Settings, start_dashboard) -> Deployment:
    return Deployment(start_dashboard(), base_settings)


def csrf_token(html: str) -> str:
    return CSRF.search(html)[1]  # type: ignore[index]


def sign_in(client: httpx.Client, key: str, next_url: str = "/dashboard/batches") -> httpx.Response:
    form = client.get("/dashboard/login", params={"next": next_url})
    assert form.status_code == 200
    return client.post(
        "/dashboard/login", data={"api_key": key, "csrf_token": csrf_token(form.text), "next": next_url}
    )


def signed_in(deployment: Deployment, key: str) -> httpx.Client:
    client = deployment.client()
    assert sign_in(client, key).status_code == 303
    return client


def new_org(settings: Settings) -> tuple[str, str]:
    return create_org(settings.resolved_database_url)


@dataclass
class SeededBatch:
    id: str
    org_id: str
    input_file_id: str
    custom_ids: list[str]


def seed_batch(
    settings: Settings,
    org_name: str,
    *,
    lines: int,
    errors_every: int = 0,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    session_id: str | None = None,
    status: str = "completed",
    prefix: str = "req",
    source: str = "batch",
) -> SeededBatch:
    """A batch stored the way the worker stores one (input file, batch row, result chunks and request-log
    rows through `ResultSink`), without running it."""
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    blobs = make_blob_store(settings.resolved_blob_url)
    batch_id = f"batch_{uuid.uuid4().hex}"
    data, spans, offset = io.BytesIO(), [], 0
    for index in range(lines):
        raw = orjson.dumps(chat_line(f"{prefix}-{index}", f"question <b>{index}</b>", model=model)) + b"\n"
        spans.append(LineSpan(index + 1, offset, len(raw)))
        offset += len(raw)
        data.write(raw)
    data.seek(0)
    with Session(engine, expire_on_commit=False) as session:
        org = tenancy.get_org_by_name(session, org_name)
        upload = files.upload(
            session, blobs, settings, org_id=org.id, filename="in.jsonl", purpose="batch", source=data
        )
        failed = len([i for i in range(lines) if errors_every and i % errors_every == 0])
        session.add(
            BatchRecord(
                id=batch_id,
                org_id=org.id,
                provider=provider,
                endpoint="/v1/chat/completions",
                input_file_id=upload.id,
                completion_window="24h",
                status=status,
                model=model,
                created_at=int(time.time()),
                created_ns=time.time_ns(),
                total=lines,
                completed=lines - failed if status == "completed" else 0,
                failed=failed if status == "completed" else 0,
                session_id=session_id,
            )
        )
        session.commit()
    labels = BatchLabels(org.id, batch_id, provider, "/v1/chat/completions", model, session_id, source)
    sink = ResultSink(engine, blobs, labels)
    for index in range(lines if status == "completed" else 0):
        failing = bool(errors_every) and index % errors_every == 0
        body = (
            {"error": {"message": "upstream exploded", "type": "server_error"}}
            if failing
            else {"object": "chat.completion", "choices": [{"message": {"content": f"answer {index}"}}]}
        )
        sink.add(
            ResultLine(
                f"{prefix}-{index}",
                status_code=500 if failing else 200,
                body=body,
                usage=Usage(0, 0, 0) if failing else Usage(10, 5, 15),
                latency_ms=100 + index,
                model=model,
            ),
            spans[index],
        )
    sink.flush()
    engine.dispose()
    return SeededBatch(batch_id, org.id, upload.id, [f"{prefix}-{i}" for i in range(lines)])


def batch_row(settings: Settings, batch_id: str) -> BatchRecord:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(BatchRecord, batch_id)
    engine.dispose()
    assert row is not None
    return row


def custom_ids(html: str) -> list[str]:
    """The custom_ids of the request rows on a page, in order."""
    return [custom_id for _, custom_id in ROW_LINK.findall(html)]


def follow(client: httpx.Client, html: str, rel: str) -> httpx.Response | None:
    match = re.search(rf'<a class="button" href="([^"]+)" rel="{rel}">', html)
    return client.get(match[1].replace("&amp;", "&")) if match else None


# -- sign-in, cookies, CSRF ----------------------------------------------------------------------------


def test_sign_in_sets_a_signed_httponly_samesite_cookie_and_sign_out_clears_it(
    sqlite_deployment: Deployment,
) -> None:
    _, key = new_org(sqlite_deployment.settings)
    client = sqlite_deployment.client()

    anonymous = client.get("/dashboard/requests", params={"status": "error"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Frequests%3Fstatus%3Derror"

    wrong = sign_in(client, "bw-not-a-real-key")
    assert wrong.status_code == 401 and "not valid or was revoked" in wrong.text
    assert "batchway_session" not in wrong.headers.get("set-cookie", "")

    signed = sign_in(client, key, next_url="/dashboard/requests?status=error")
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/requests?status=error"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("batchway_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/dashboard", f"max-age={SESSION_SECONDS}"} <= flags
    assert "secure" not in flags  # plain http on loopback
    assert key not in cookie  # the key itself never goes into the cookie
    page = client.get("/dashboard/batches")
    assert page.status_code == 200 and "Sign out" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"

    # Behind a TLS-terminating proxy the cookie is Secure.
    proxied = sqlite_deployment.client()
    form = proxied.get("/dashboard/login")
    over_https = proxied.post(
        "/dashboard/login",
        data={"api_key": key, "csrf_token": csrf_token(form.text)},
        headers={"x-forwarded-proto": "https"},
    )
    assert "secure" in over_https.headers["set-cookie"].lower()

    # A tampered cookie is no session.
    forged = sqlite_deployment.client()
    value = client.cookies["batchway_session"]
    forged.cookies.set("batchway_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert forged.get("/dashboard/batches").status_code == 303

    out = client.post("/dashboard/logout", data={"csrf_token": csrf_token(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login?signed_out=1"
    assert re.search(r"batchway_session=\"?\"?;.*max-age=0", out.headers["set-cookie"].lower())
    client.cookies.delete("batchway_session")
    assert client.get("/dashboard/batches").status_code == 303


def test_an_expired_or_tampered_session_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = SessionSigner(["a-long-enough-secret-for-tests"])
    key = ApiKey(id=7, org_id="org_x", key_hash="ab" * 32, prefix="bw-abcd", created_at=0)
    fresh = signer.issue(key)
    session = signer.read(fresh)
    assert session is not None and (session.org_id, session.key_id) == ("org_x", 7)
    assert session.expires_at >= int(time.time()) + SESSION_SECONDS - 5
    assert signer.read(fresh + "x") is None
    assert SessionSigner(["another-secret-entirely-here"]).read(fresh) is None

    class Clock:  # itsdangerous stamps with time.time(): sign as if 8 h and a minute ago
        @staticmethod
        def time() -> float:
            return time.time() - SESSION_SECONDS - 60

    monkeypatch.setattr(itsdangerous.timed, "time", Clock)
    stale = signer.issue(key)
    monkeypatch.undo()
    assert signer.read(stale) is None

    # Rotation: a session signed with the old secret still reads once a new one is put first.
    rotated = SessionSigner(["the-new-secret-goes-first", "a-long-enough-secret-for-tests"])
    assert rotated.read(fresh) is not None


def test_a_revoked_key_cannot_sign_in_and_ends_its_sessions_within_seconds(
    sqlite_deployment: Deployment,
) -> None:
    org_name, key = new_org(sqlite_deployment.settings)
    client = signed_in(sqlite_deployment, key)
    assert client.get("/dashboard/batches").status_code == 200

    engine = make_engine(sqlite_deployment.settings.resolved_database_url)
    with Session(engine) as session:
        org = tenancy.get_org_by_name(session, org_name)
        tenancy.revoke_api_key(session, org, tenancy.list_api_keys(session, org)[0].id)  # type: ignore[arg-type]
    engine.dispose()
    revoked_at = time.monotonic()
    while client.get("/dashboard/batches").status_code == 200:
        assert time.monotonic() - revoked_at < KEY_RECHECK_SECONDS + 3, "the session outlived its key"
        time.sleep(0.25)
    assert sign_in(sqlite_deployment.client(), key).status_code == 401


def test_forms_without_a_valid_csrf_token_are_refused(sqlite_deployment: Deployment) -> None:
    settings = sqlite_deployment.settings
    org_name, key = new_org(settings)
    batch = seed_batch(settings, org_name, lines=3, status="in_progress")
    client = signed_in(sqlite_deployment, key)
    page = client.get("/dashboard/batches")
    token = csrf_token(page.text)
    cancel = f"/dashboard/batches/{batch.id}/cancel"

    assert client.post(cancel, data={}).status_code == 403
    assert client.post(cancel, data={"csrf_token": "0" * 64}).status_code == 403
    other_session = signed_in(sqlite_deployment, key)  # the same key signed in again: another token
    other_token = csrf_token(other_session.get("/dashboard/batches").text)
    refused = client.post(cancel, data={"csrf_token": other_token})
    assert refused.status_code == 403 and "This form has expired" in refused.text
    assert (
        batch_row(settings, batch.id).status == "in_progress"
        and not batch_row(settings, batch.id).cancel_requested
    )
    assert client.post("/dashboard/logout", data={}).status_code == 403
    assert client.get("/dashboard/batches").status_code == 200  # still signed in
    login_form = sqlite_deployment.client()
    assert login_form.post("/dashboard/login", data={"api_key": key}).status_code == 403

    done = client.post(cancel, data={"csrf_token": token, "next": "/dashboard/batches"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/dashboard/batches?notice=cancel_requested&subject={batch.id}"
    assert batch_row(settings, batch.id).status == "cancelling"
    again = client.post(cancel, data={"csrf_token": token, "next": "https://evil.example/"})
    assert again.headers["location"].startswith("/dashboard/batches?notice=")  # never off-site


# -- requests: filters and paging ----------------------------------------------------------------------


def test_requests_are_filtered_and_paged_by_the_url(deployment: Deployment) -> None:
    settings = deployment.settings
    org_name, key = new_org(settings)
    big = seed_batch(settings, org_name, lines=120, errors_every=10, session_id="sess-a", prefix="a")
    small = seed_batch(
        settings, org_name, lines=30, model="other-model", provider="claude", session_id="sess-b", prefix="b"
    )
    client = signed_in(deployment, key)

    first = client.get("/dashboard/requests", params={"batch_id": big.id})
    assert first.status_code == 200 and "120 requests match" in first.text
    seen = custom_ids(first.text)
    assert len(seen) == 50 and seen[0] == "a-119" and 'rel="prev"' not in first.text
    pages = [seen]
    response = first
    while (response := follow(client, response.text, "next")) is not None:
        assert response.status_code == 200 and f'value="{big.id}"' in response.text
        pages.append(custom_ids(response.text))
    assert [len(page) for page in pages] == [50, 50, 20]
    assert sorted(sum(pages, [])) == sorted(big.custom_ids)  # every line exactly once, newest first
    back = follow(client, client.get(last_page_url(client, big.id)).text, "prev")
    assert back is not None and custom_ids(back.text) == pages[1]

    errors = client.get("/dashboard/requests", params={"batch_id": big.id, "status": "error"})
    assert "12 requests match" in errors.text
    assert sorted(custom_ids(errors.text)) == sorted(f"a-{i}" for i in range(0, 120, 10))
    assert custom_ids(client.get("/dashboard/requests", params={"status": "500"}).text) == custom_ids(
        errors.text
    )
    by_model = client.get("/dashboard/requests", params={"model": "other-model", "limit": "25"})
    assert "30 requests match" in by_model.text and len(custom_ids(by_model.text)) == 25
    assert all(cid.startswith("b-") for cid in custom_ids(by_model.text))
    assert set(
        custom_ids(client.get("/dashboard/requests?provider=claude&session_id=sess-b&limit=100").text)
    ) == set(small.custom_ids)
    assert "138 requests match" in client.get("/dashboard/requests?status=ok").text
    assert "0 requests match" in client.get("/dashboard/requests?session_id=nobody").text

    # A shared link shows the same view to anyone of the org, and keeps its filters in the form.
    shared = f"/dashboard/requests?batch_id={big.id}&status=error"
    colleague = signed_in(deployment, key)
    view = colleague.get(shared)
    assert custom_ids(view.text) == custom_ids(errors.text)
    assert '<option value="error" selected>' in view.text and f'value="{big.id}"' in view.text

    bad = client.get("/dashboard/requests", params={"status": "sometimes"})
    assert bad.status_code == 400 and "status must be" in bad.text


def last_page_url(client: httpx.Client, batch_id: str) -> str:
    html = client.get("/dashboard/requests", params={"batch_id": batch_id}).text
    url = None
    while (match := re.search(r'<a class="button" href="([^"]+)" rel="next">', html)) is not None:
        url = match[1].replace("&amp;", "&")
        html = client.get(url).text
    assert url is not None
    return url


def test_batches_are_listed_newest_first_with_paging(sqlite_deployment: Deployment) -> None:
    settings = sqlite_deployment.settings
    org_name, key = new_org(settings)
    ids = [seed_batch(settings, org_name, lines=1, prefix=f"p{i}").id for i in range(22)]
    client = signed_in(sqlite_deployment, key)
    first = client.get("/dashboard/batches")
    listed = re.findall(r'<tr data-batch-id="(batch_[0-9a-f]+)"', first.text)
    assert listed == ids[::-1][:20] and "Nothing running" in first.text
    older = follow(client, first.text, "next")
    assert older is not None
    assert re.findall(r'<tr data-batch-id="(batch_[0-9a-f]+)"', older.text) == ids[::-1][20:]
    newer = follow(client, older.text, "prev")
    assert newer is not None and re.findall(r'<tr data-batch-id="(batch_[0-9a-f]+)"', newer.text) == listed
    assert f'href="/dashboard/requests?batch_id={ids[-1]}"' in first.text  # a batch opens its requests


# -- org isolation -------------------------------------------------------------------------------------


def test_another_orgs_ids_are_not_found_and_its_data_never_shown(deployment: Deployment) -> None:
    settings = deployment.settings
    owner, _ = new_org(settings)
    theirs = seed_batch(settings, owner, lines=5, status="completed", prefix="secret-line")
    running = seed_batch(settings, owner, lines=2, status="in_progress", prefix="secret-run")
    _, key = new_org(settings)
    client = signed_in(deployment, key)
    line_id = request_line_ids(settings, theirs.id)[0]
    token = csrf_token(client.get("/dashboard/batches").text)

    for path in (
        f"/dashboard/requests?batch_id={theirs.id}",
        f"/dashboard/requests/{line_id}",
        f"/dashboard/files/{theirs.input_file_id}/content",
        "/dashboard/no-such-page",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.text and "secret-line" not in response.text, path
    cancel = client.post(f"/dashboard/batches/{running.id}/cancel", data={"csrf_token": token})
    assert cancel.status_code == 404 and batch_row(settings, running.id).status == "in_progress"
    everything = client.get("/dashboard/requests").text + client.get("/dashboard/batches").text
    assert "secret-" not in everything and theirs.id not in everything
    assert "0 requests match" in everything
    # Paging from another org's line is refused, not a way to read around it.
    assert client.get("/dashboard/requests", params={"after": line_id}).status_code == 400


def request_line_ids(settings: Settings, batch_id: str) -> list[str]:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        ids = list(session.exec(select(RequestLog.line_id).where(RequestLog.batch_id == batch_id)).all())
    engine.dispose()
    return ids


# -- a real batch's request, and the usage page --------------------------------------------------------


@pytest.mark.usefixtures("worker")
async def test_request_detail_shows_bodies_usage_and_redacted_headers(
    sqlite_deployment: Deployment, start_simulator, new_org, client_for
) -> None:
    _, key = new_org({"openai": start_simulator()})
    api = client_for(key)
    lines = [
        chat_line("hello-1", "<script>alert('x')</script> what is 2+2?"),
        chat_line("boom", "SIMULATE_ERROR_400"),
    ]
    created = await submit(
        api,
        lines,
        extra_headers={"batchway-session-id": "sess-42", "x-team": "search", "x-api-key": "sk-secret-value"},
    )
    batch = await wait_for(api, created.id)
    assert batch.status == "completed"

    client = signed_in(sqlite_deployment, key)
    listing = client.get("/dashboard/requests", params={"batch_id": batch.id})
    assert sorted(custom_ids(listing.text)) == ["boom", "hello-1"] and "sess-42" in listing.text
    assert "<script>alert" not in listing.text
    line_ids = {custom_id: line_id for line_id, custom_id in ROW_LINK.findall(listing.text)}

    detail = client.get(f"/dashboard/requests/{line_ids['hello-1']}")
    assert detail.status_code == 200
    text = detail.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; what is 2+2?" in text  # escaped, never markup
    assert "<script>alert" not in text
    assert 'Response <span class="muted">HTTP 200</span>' in text and "chat.completion" in text
    assert f'<th scope="row">Total</th><td class="num">{batch.usage.total_tokens:,}</td>' in text  # 400: none
    headers = text.split('id="headers-title"')[1]
    assert '<td class="mono">x-team</td><td class="mono wrap">search</td>' in headers
    assert '<td class="mono">batchway-session-id</td><td class="mono wrap">sess-42</td>' in headers
    assert "sk-secret-value" not in text and "x-api-key" not in headers
    assert '<td class="mono">authorization</td>' not in headers
    failed = client.get(f"/dashboard/requests/{line_ids['boom']}").text
    assert "HTTP 400" in failed and "SIMULATE_ERROR_400" in failed

    downloaded = client.get(f"/dashboard/files/{batch.output_file_id}/content")
    assert downloaded.status_code == 200 and "attachment" in downloaded.headers["content-disposition"]
    assert downloaded.content == (await api.files.content(batch.output_file_id)).content


def test_usage_page_charts_the_month_against_the_plan_cap(sqlite_deployment: Deployment) -> None:
    settings = sqlite_deployment.settings
    org_name, key = new_org(settings)
    seed_batch(settings, org_name, lines=20, prefix="u")  # 20 lines of 15 tokens
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        plans.set_plan(
            session, f"cap-{org_name}", monthly_token_cap=1000, feedback=False, judge_sample_rate=0
        )
        plans.set_org(session, org_name, plan=f"cap-{org_name}")
    engine.dispose()
    client = signed_in(sqlite_deployment, key)
    page = client.get("/dashboard/usage")
    assert page.status_code == 200
    assert '<svg class="chart"' in page.text and "Tokens by day" in page.text
    assert "300 of 1,000 tokens" in page.text and "30.0%" in page.text
    assert re.search(r"<td>gpt-4o-mini</td><td>batch</td><td class=\"num\">20</td>", page.text)
    assert client.get("/dashboard/usage", params={"month": "2020-02"}).status_code == 200
    assert client.get("/dashboard/usage", params={"month": "soon"}).status_code == 400


def test_the_usage_page_counts_exactly_what_the_usage_api_counts(deployment: Deployment) -> None:
    """The page reads the month in one grouped scan; `/v1/usage` in one per breakdown: same figures."""
    settings = deployment.settings
    org_name, _ = new_org(settings)
    seed_batch(settings, org_name, lines=30, errors_every=4, prefix="x")
    seed_batch(settings, org_name, lines=12, model="m-2", provider="claude", session_id="s", prefix="y")
    seed_batch(settings, org_name, lines=5, model="judge-model", source="judge", prefix="j")
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        org = tenancy.get_org_by_name(session, org_name)
        fast = dashboard_queries.month_usage(session, org, None)
        reference = usage.monthly_usage(session, org, None)
    engine.dispose()

    def ordered(figures: dict[str, Any]) -> dict[str, Any]:
        for key in ("by_model", "by_provider"):
            figures[key] = sorted(
                figures[key], key=lambda row: (str(row.get("model") or row.get("provider")), row["source"])
            )
        return figures

    assert ordered(fast) == ordered(reference)
    assert fast["total"]["requests"] == 47 and fast["by_source"]["judge"]["requests"] == 5


# -- small pieces --------------------------------------------------------------------------------------


def test_session_secret_comes_from_the_setting_else_a_private_key_file(tmp_path: Path, caplog) -> None:
    configured = SimpleNamespace(
        session_secret="new-secret-0123456789,old-secret-0123456789", data_dir=tmp_path
    )
    assert session_secrets(configured) == ["new-secret-0123456789", "old-secret-0123456789"]  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        session_secrets(SimpleNamespace(session_secret="short", data_dir=tmp_path))  # type: ignore[arg-type]

    unset = SimpleNamespace(data_dir=tmp_path / "data")  # a Settings without the field at all
    first = session_secrets(unset)  # type: ignore[arg-type]
    key_file = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert session_secrets(unset) == first  # type: ignore[arg-type]  (every process of the data dir agrees)

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the data dir should be")
    with caplog.at_level("WARNING", logger="batchway.dashboard"):
        ephemeral = session_secrets(SimpleNamespace(data_dir=blocked))  # type: ignore[arg-type]
    assert len(ephemeral) == 1 and ephemeral != first and "random key" in caplog.text


def test_only_dashboard_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/dashboard/requests?batch_id=x") == "/dashboard/requests?batch_id=x"
    for hostile in (
        "https://evil.example/",
        "//evil.example",
        "/dashboardevil",
        "/v1/files",
        "/dashboard/\\x",
        None,
    ):
        assert safe_next(hostile) == "/dashboard/batches"


def test_chart_axis_steps_are_round() -> None:
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(1440) == [0, 500, 1000, 1500]
    assert nice_ticks(7_300_000)[-1] >= 7_300_000
