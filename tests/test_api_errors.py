"""Bad input: each a clear 4xx in the OpenAI error envelope, nothing stored half-way, never a 500."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.batch_helpers import chat_line, jsonl, submit, upload, wait_for

NOT_AN_INTEGER = "a valid integer, unable to parse string as an integer"

pytestmark = pytest.mark.usefixtures("worker")


def assert_error(
    exc: openai.APIStatusError, status: int, *, param: str | None = None, code: str | None = None
):
    assert exc.status_code == status, exc
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if param is not None:
        assert exc.param == param
    if code is not None:
        assert exc.code == code
    return body["error"]


@pytest.fixture
def org_client(start_simulator, new_org, client_for):
    _, key = new_org({"openai": start_simulator()})
    return client_for(key)


async def file_count(client: openai.AsyncOpenAI) -> int:
    return len((await client.files.list()).data)


async def test_missing_and_invalid_keys(api_url: str) -> None:
    async with httpx.AsyncClient() as raw:
        response = await raw.get(f"{api_url}/batches")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.AuthenticationError) as exc:
        await openai.AsyncOpenAI(base_url=api_url, api_key="bw-not-a-key", max_retries=0).batches.list()
    assert_error(exc.value, 401, code="invalid_api_key")


async def test_other_orgs_ids_are_not_found(start_simulator, new_org, client_for) -> None:
    sim = start_simulator()
    _, key_a = new_org({"openai": sim})
    _, key_b = new_org({"openai": sim})
    alice, bob = client_for(key_a), client_for(key_b)
    batch = await submit(alice, [chat_line("x", "hi")])
    file_id = batch.input_file_id
    for call in (
        bob.files.retrieve(file_id),
        bob.files.content(file_id),
        bob.files.delete(file_id),
        bob.batches.retrieve(batch.id),
        bob.batches.cancel(batch.id),
    ):
        with pytest.raises(openai.NotFoundError) as exc:
            await call
        assert_error(exc.value, 404)
    with pytest.raises(openai.NotFoundError):
        await bob.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert [b.id for b in (await bob.batches.list()).data] == []
    assert file_id not in [f.id for f in (await bob.files.list()).data]
    await wait_for(alice, batch.id)


async def test_upload_limits_and_encoding(start_api, start_simulator, new_org, client_for) -> None:
    _, key = new_org({"openai": start_simulator()})
    small = client_for(key, url=start_api(max_input_bytes=2000, max_lines=3))
    cases = [
        ({"file": ("a.jsonl", jsonl([chat_line(f"n{i}", "x" * 400) for i in range(6)]))}, "file_too_large"),
        ({"file": ("a.jsonl", jsonl([chat_line(f"n{i}", "y") for i in range(4)]))}, "too_many_tasks"),
        ({"file": ("a.jsonl", b'{"custom_id": "\xff\xfe"}\n')}, "invalid_encoding"),
        ({"file": ("a.jsonl", b"")}, "empty_file"),
        ({"file": ("a.jsonl", jsonl([chat_line("a", "ok")]) + b"{not json\n")}, "invalid_json_line"),
        (
            {"file": ("a.jsonl", jsonl([chat_line("a", "ok")]) + b"\n" + jsonl([chat_line("b", "ok")]))},
            "invalid_json_line",
        ),
        ({"file": ("a.jsonl", jsonl([chat_line("a", "ok")]) + b"[1, 2]\n")}, "invalid_json_line"),
    ]
    for kwargs, code in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            await small.files.create(purpose="batch", **kwargs)
        error = assert_error(exc.value, 400, param="file", code=code)
        if code == "invalid_json_line":
            assert "Line 2" in error["message"]
    assert await file_count(small) == 0


async def test_upload_bad_purpose_and_missing_fields(org_client: openai.AsyncOpenAI, api_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await org_client.files.create(file=("a.jsonl", b"{}\n"), purpose="nonsense")  # type: ignore[arg-type]
    assert_error(exc.value, 400, param="purpose")
    headers = {"authorization": f"Bearer {org_client.api_key}"}
    async with httpx.AsyncClient(headers=headers) as raw:
        no_file = await raw.post(f"{api_url}/files", data={"purpose": "batch"}, files={"x": ("a", b"1")})
        no_purpose = await raw.post(f"{api_url}/files", files={"file": ("a.jsonl", b"{}\n")})
        not_multipart = await raw.post(f"{api_url}/files", json={"purpose": "batch"})
        broken = await raw.post(
            f"{api_url}/files",
            content=b"--xx\r\ngarbage",
            headers={"content-type": "multipart/form-data; boundary=xx"},
        )
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    assert no_purpose.status_code == 400 and no_purpose.json()["error"]["param"] == "purpose"
    assert not_multipart.status_code == 400
    assert broken.status_code == 400
    assert await file_count(org_client) == 0


@pytest.mark.parametrize(
    ("lines", "code", "line"),
    [
        ([chat_line("a", "1"), chat_line("a", "2")], "duplicate_custom_id", 2),
        ([chat_line("a", "1"), {**chat_line("b", "2"), "url": "/v1/embeddings"}], "url_mismatch", 2),
        ([chat_line("a", "1"), chat_line("b", "2", model="gpt-4o")], "model_mismatch", 2),
        (
            [chat_line("a", "1"), {"method": "POST", "url": "/v1/chat/completions", "body": {}}],
            "missing_custom_id",
            2,
        ),
        ([{**chat_line("a", "1"), "method": "GET"}], "invalid_method", 1),
    ],
)
async def test_batch_rejects_bad_lines(org_client: openai.AsyncOpenAI, lines, code: str, line: int) -> None:
    file_id = await upload(org_client, lines)
    with pytest.raises(openai.BadRequestError) as exc:
        await org_client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    error = assert_error(exc.value, 400, param="input_file_id", code=code)
    assert f"line {line}" in error["message"].lower()
    assert (await org_client.batches.list()).data == []


async def test_batch_create_parameter_errors(org_client: openai.AsyncOpenAI, api_url: str) -> None:
    file_id = await upload(org_client, [chat_line("a", "1")])
    other = (await org_client.files.create(file=("notes.txt", b"hello"), purpose="user_data")).id
    good = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    cases = [
        ({**good, "endpoint": "/v1/images/generations"}, "endpoint"),
        ({**good, "completion_window": "48h"}, "completion_window"),
        ({**good, "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({**good, "metadata": {"k" * 65: "v"}}, "metadata"),
        ({**good, "metadata": {"k": "v" * 513}}, "metadata"),
        ({**good, "metadata": {"k": 5}}, "metadata"),
        ({**good, "input_file_id": other}, "input_file_id"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            await org_client.batches.create(**body)
        assert_error(exc.value, 400, param=param)
    with pytest.raises(openai.NotFoundError):
        await org_client.batches.create(**{**good, "input_file_id": "file-missing"})
    headers = {"authorization": f"Bearer {org_client.api_key}"}
    async with httpx.AsyncClient(headers=headers) as raw:
        missing = await raw.post(f"{api_url}/batches", json={"endpoint": "/v1/chat/completions"})
        not_json = await raw.post(
            f"{api_url}/batches", content=b"{oops", headers={"content-type": "application/json"}
        )
        bad_limits = [
            await raw.get(f"{api_url}/batches", params={"limit": limit}) for limit in (0, 101, "ten", "")
        ]
        bad_after = await raw.get(f"{api_url}/batches", params={"after": "batch_nope"})
        bad_order = await raw.get(f"{api_url}/files", params={"order": "sideways"})
        bad_file_limit = await raw.get(f"{api_url}/files", params={"limit": "ten"})
        unknown = await raw.get(f"{api_url}/nothing-here")
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "input_file_id"
    assert not_json.status_code == 400
    # The same refusals (and words) for every list parameter, checked by FastAPI or by the route itself.
    assert [
        (r.status_code, r.json()["error"]["param"], r.json()["error"]["message"]) for r in bad_limits
    ] == [
        (400, "limit", "Invalid value for 'limit': Input should be greater than or equal to 1."),
        (400, "limit", "Invalid value for 'limit': Input should be less than or equal to 100."),
        (400, "limit", f"Invalid value for 'limit': Input should be {NOT_AN_INTEGER}."),
        (400, "limit", f"Invalid value for 'limit': Input should be {NOT_AN_INTEGER}."),
    ]
    assert bad_after.status_code == 400 and bad_after.json()["error"]["param"] == "after"
    assert bad_order.status_code == 400
    assert (
        bad_file_limit.json()["error"]["message"]
        == f"Invalid value for 'limit': Input should be {NOT_AN_INTEGER}."
    )
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert (await org_client.batches.list()).data == []


async def test_provider_resolution(start_simulator, new_org, client_for) -> None:
    sim = start_simulator()
    _, none_key = new_org({})
    _, two_key = new_org({"openai": sim, "backup": sim})
    with pytest.raises(openai.BadRequestError) as exc:
        await submit(client_for(none_key), [chat_line("a", "1")])
    assert_error(exc.value, 400, param="batchway-provider")
    two = client_for(two_key)
    with pytest.raises(openai.BadRequestError) as exc:
        await submit(two, [chat_line("a", "1")])
    assert "several providers" in assert_error(exc.value, 400)["message"]
    with pytest.raises(openai.BadRequestError):
        await submit(two, [chat_line("a", "1")], extra_headers={"batchway-provider": "nope"})
    batch = await submit(two, [chat_line("a", "1")], extra_headers={"batchway-provider": "backup"})
    assert (await wait_for(two, batch.id)).status == "completed"


async def test_files_list_paging_and_delete(org_client: openai.AsyncOpenAI) -> None:
    ids = [await upload(org_client, [chat_line("a", str(i))], name=f"f{i}.jsonl") for i in range(3)]
    listed = [f.id async for f in org_client.files.list(limit=2, purpose="batch")]
    assert listed == ids[::-1]
    ascending = await org_client.files.list(order="asc", limit=2)
    assert [f.id for f in ascending.data] == ids[:2] and ascending.has_more
    payload = jsonl([chat_line("a", "0")])
    assert (await org_client.files.content(ids[0])).content == payload
    info = await org_client.files.retrieve(ids[0])
    assert (info.filename, info.bytes, info.purpose, info.status) == (
        "f0.jsonl",
        len(payload),
        "batch",
        "processed",
    )
    deleted = await org_client.files.delete(ids[0])
    assert deleted.deleted is True and deleted.id == ids[0]
    with pytest.raises(openai.NotFoundError):
        await org_client.files.retrieve(ids[0])


async def test_nul_characters_and_odd_ids_are_clean_4xx(
    start_api, postgres_url, start_simulator, new_org, client_for
):
    """PostgreSQL refuses NUL bytes in text: they must be turned away before any query."""
    api = start_api(database_url=postgres_url)
    _, key = new_org({"openai": start_simulator()}, database_url=postgres_url)
    client = client_for(key, url=api)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers) as raw:
        for path in ("/batches/batch_%00x", "/files/file-%00", "/files/file-%00/content"):
            response = await raw.get(api + path)  # refused at the edge, before any route or query
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"]["type"] == "invalid_request_error"
        response = await raw.get(api + "/batches/" + "a" * 300)
        assert response.status_code == 404
        for params in (
            {"after": "batch_\x00"},
            {"purpose": "\x00"},
            {"after": "\ud800".encode("utf-8", "surrogatepass")},
        ):
            response = await raw.get(api + ("/files" if "purpose" in params else "/batches"), params=params)
            assert response.status_code == 400, (params, response.text)
        response = await raw.post(api + "/batches/batch_%00/cancel")
        assert response.status_code == 400
    for bad in ({"input_file_id": "file-\x00"}, {"metadata": {"k": "v\x00"}}):
        with pytest.raises(openai.APIStatusError) as exc:
            await client.batches.create(
                **{
                    "input_file_id": "file-x",
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                    **bad,
                }
            )
        assert exc.value.status_code in (400, 404)
    with pytest.raises(openai.BadRequestError) as exc:
        await client.files.create(file=("a.jsonl", jsonl([chat_line("a\x00", "hi")])), purpose="batch")
    assert_error(exc.value, 400, param="file", code="invalid_json_line")
    with pytest.raises(openai.BadRequestError):
        await submit(client, [chat_line("a", "hi")], extra_headers={"batchway-provider": "open\tai"})


async def test_chunked_upload_over_the_limit_stops_early(
    start_api, start_simulator, new_org, client_for, base_settings
):
    _, key = new_org({"openai": start_simulator()})
    api = start_api(max_input_bytes=100_000)

    async def body():  # no Content-Length: the server cannot refuse up front
        yield b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        for _ in range(1000):
            yield b"x" * 10_000

    headers = {"authorization": f"Bearer {key}", "content-type": "multipart/form-data; boundary=b"}
    async with httpx.AsyncClient() as raw:
        response = await raw.post(f"{api}/files", content=body(), headers=headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == "file_too_large"
    assert await file_count(client_for(key, url=api)) == 0
