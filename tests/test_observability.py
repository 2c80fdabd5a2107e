"""Every batched line observable like a live call: one request-log row each (session, headers, usage,
cost, scores), the org's monthly usage counted once, the plan's monthly cap, feedback scoring with a
sampled LLM judge, and org isolation on every endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from sqlmodel import Session

from batchway import plans
from batchway.results.pricing import set_price
from batchway.results.scoring import judge_sampled
from batchway.storage.db import make_engine
from tests.batch_helpers import chat_line, jsonl, submit, wait_for
from tests.servers import serve_in_thread

pytestmark = pytest.mark.usefixtures("worker")


def api_get(client: openai.AsyncOpenAI, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(
        f"{client.base_url}{path.lstrip('/')}",
        params=params,
        headers={"authorization": f"Bearer {client.api_key}"},
    )
    return {"status": response.status_code, **response.json()}


async def test_every_line_is_a_request_log_row_with_session_and_redacted_headers(
    start_simulator, new_org, client_for
) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    lines = [chat_line(f"r-{i}", f"question {i}") for i in range(5)]
    lines[2] = chat_line("r-2", "SIMULATE_ERROR_400")
    created = await submit(
        client,
        lines,
        extra_headers={"batchway-session-id": "sess-42", "x-team": "search", "x-api-key": "sk-secret-value"},
    )
    batch = await wait_for(client, created.id)

    page = api_get(client, "/requests", batch_id=batch.id, limit=2)
    assert page["object"] == "list" and len(page["data"]) == 2 and page["has_more"] is True
    rows = page["data"]
    while page["has_more"]:
        page = api_get(client, "/requests", batch_id=batch.id, limit=2, after=page["last_id"])
        rows += page["data"]
    assert sorted(row["custom_id"] for row in rows) == [f"r-{i}" for i in range(5)]
    assert {row["session_id"] for row in rows} == {"sess-42"} and {row["source"] for row in rows} == {"batch"}
    failed = [row for row in rows if row["status"] == "error"]
    assert [(row["custom_id"], row["status_code"]) for row in failed] == [("r-2", 400)]
    assert sum(row["usage"]["total_tokens"] for row in rows) == batch.usage.total_tokens > 0

    assert {
        r["custom_id"] for r in api_get(client, "/requests", batch_id=batch.id, status="error")["data"]
    } == {"r-2"}
    assert len(api_get(client, "/requests", session_id="sess-42", status="ok")["data"]) == 4
    assert api_get(client, "/requests", session_id="nobody")["data"] == []

    first = next(row for row in rows if row["custom_id"] == "r-0")
    one = api_get(client, f"/requests/{first['id']}")
    assert one["request"]["messages"][0]["content"] == "question 0"
    assert one["response"]["status_code"] == 200 and one["response"]["body"]["object"] == "chat.completion"
    headers = one["request_headers"]
    assert headers["x-team"] == "search" and headers["batchway-session-id"] == "sess-42"
    assert "authorization" not in headers and "x-api-key" not in headers
    assert all("sk-secret-value" not in value for value in headers.values())
    output_ids = {
        line_id for line_id in (await client.files.content(batch.output_file_id)).text.split('"id":"')[1:]
    }
    assert any(one["id"] in text for text in output_ids), "the request id is the line's id in the output file"


async def test_usage_is_counted_once_priced_and_capped(
    start_simulator, new_org, client_for, base_settings
) -> None:
    org, key = new_org({"openai": start_simulator()})
    engine = make_engine(base_settings.resolved_database_url)
    set_price(
        engine,
        provider="openai",
        model="gpt-4o-mini",
        input_per_million=1.0,
        cached_input_per_million=0.5,
        output_per_million=4.0,
        batch_discount=0.5,
    )
    client = client_for(key)
    batch = await wait_for(
        client, (await submit(client, [chat_line(f"u-{i}", "count me") for i in range(6)])).id
    )
    # Many clients polling the finished batch at once change nothing.
    await asyncio.gather(*(client.batches.retrieve(batch.id) for _ in range(20)))
    usage = api_get(client, "/usage")
    assert usage["total"]["requests"] == 6
    assert usage["by_source"]["batch"]["total_tokens"] == batch.usage.total_tokens
    assert usage["by_source"]["judge"]["requests"] == 0
    expected = (batch.usage.input_tokens * 1.0 + batch.usage.output_tokens * 4.0) / 1e6 * 0.5
    assert usage["total"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert [(m["model"], m["requests"]) for m in usage["by_model"]] == [("gpt-4o-mini", 6)]
    assert sum(day["requests"] for day in usage["by_day"]) == 6

    with Session(engine) as session:
        plans.set_plan(session, f"tiny-{org}", monthly_token_cap=1, feedback=False, judge_sample_rate=0)
        plans.set_org(session, org, plan=f"tiny-{org}")
    engine.dispose()
    sdk = openai.AsyncOpenAI(base_url=str(client.base_url), api_key=key)  # retries on: must not retry this
    with pytest.raises(openai.RateLimitError) as refused:
        await submit(sdk, [chat_line("over", "no more")])
    assert refused.value.code == "insufficient_quota" and refused.value.status_code == 429
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert api_get(client, "/usage")["plan"]["monthly_token_cap"] == 1


async def test_an_all_error_batch_logs_every_line_with_zero_usage(
    start_simulator, new_org, client_for
) -> None:
    _, key = new_org({"openai": start_simulator()})
    client = client_for(key)
    batch = await wait_for(
        client, (await submit(client, [chat_line(f"e-{i}", "SIMULATE_ERROR_500") for i in range(3)])).id
    )
    assert batch.status == "completed" and batch.output_file_id is None and batch.usage.total_tokens == 0
    rows = api_get(client, "/requests", batch_id=batch.id)["data"]
    assert len(rows) == 3 and {row["status_code"] for row in rows} == {500}


class Judge:
    """An OpenAI-compatible chat API that grades whatever it is shown 8/10, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.complete)

    async def complete(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.calls += 1
        assert body["response_format"] == {"type": "json_object"}
        return {
            "id": f"chatcmpl-judge{self.calls}",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": '{"grade": 8, "reason": "clear and correct"}',
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        }


async def test_feedback_scores_every_line_and_judges_a_deterministic_sample(
    start_simulator, new_org, client_for, base_settings
) -> None:
    judge = Judge()
    with serve_in_thread(judge.app) as judge_url:
        org, key = new_org(
            {"openai": start_simulator(), "grader": judge_url + "/v1"}, kinds={"grader": "fanout"}
        )
        engine = make_engine(base_settings.resolved_database_url)
        with Session(engine) as session:
            plans.set_plan(
                session, f"pro-{org}", monthly_token_cap=None, feedback=True, judge_sample_rate=0.5
            )
            plans.set_org(session, org, plan=f"pro-{org}", judge_provider="grader", judge_model="judge-1")
        engine.dispose()
        client = client_for(key)
        lines = [chat_line(f"s-{i}", f"score me {i}") for i in range(12)]
        created = await client.batches.create(
            input_file_id=(await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")).id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_headers={"batchway-provider": "openai"},
        )
        batch = await wait_for(client, created.id)
        assert batch.status == "completed"
        rows: list[dict[str, Any]] = []
        for _ in range(100):  # scoring runs after `completed`, never before it
            rows = api_get(client, "/requests", batch_id=batch.id, source="batch")["data"]
            if all(row["scores"]["heuristic"] is not None for row in rows):
                break
            await asyncio.sleep(0.2)
    expected = {f"s-{i}" for i in range(12) if judge_sampled(batch.id, f"s-{i}", 0.5)}
    assert all(row["scores"]["heuristic"] == 1.0 and row["scores"]["heuristic_reasons"] == [] for row in rows)
    assert {row["custom_id"] for row in rows if row["scores"]["judge"] is not None} == expected
    assert all(
        row["scores"]["judge"] == pytest.approx(7 / 9, abs=1e-3)
        for row in rows
        if row["custom_id"] in expected
    )
    assert judge.calls == len(expected) > 0
    judged = api_get(client, "/requests", batch_id=batch.id, source="judge")["data"]
    assert len(judged) == len(expected) and {row["provider"] for row in judged} == {"grader"}
    usage = api_get(client, "/usage")
    assert usage["by_source"]["judge"]["requests"] == len(expected)
    assert usage["by_source"]["judge"]["total_tokens"] == 60 * len(expected)
    summary = api_get(client, "/scores")["data"]
    assert summary == [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "scored": 12,
            "mean_heuristic": 1.0,
            "judged": len(expected),
            "mean_judge": pytest.approx(7 / 9, abs=1e-3),
        }
    ]
    assert batch.request_counts.completed == 12  # judge calls are not the batch's lines


async def test_other_orgs_never_see_requests_usage_or_scores(start_simulator, new_org, client_for) -> None:
    _, key = new_org({"openai": start_simulator()})
    _, other_key = new_org({"openai": start_simulator()})
    client, other = client_for(key), client_for(other_key)
    batch = await wait_for(client, (await submit(client, [chat_line("mine", "private")])).id)
    row = api_get(client, "/requests", batch_id=batch.id)["data"][0]
    assert api_get(other, f"/requests/{row['id']}")["status"] == 404
    assert api_get(other, "/requests", batch_id=batch.id)["data"] == []
    assert api_get(other, "/usage")["total"]["requests"] == 0
    assert api_get(other, "/scores")["data"] == []
    assert api_get(other, "/requests", after=row["id"])["status"] == 400
