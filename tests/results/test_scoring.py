"""Scoring of chat lines: the heuristic rules, judge sampling, the judge's request and the reading of its
answer. Pure functions: no server, no database."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter

from batchway.results import scoring
from batchway.results.judge import (
    ANSWER_CHAR_BUDGET,
    JUDGE_MAX_TOKENS,
    MAX_CONVERSATION_MESSAGES,
    MESSAGE_CHAR_BUDGET,
    REASON_MAX_CHARS,
    sample_point,
)
from batchway.results.scoring import (
    PENALTIES,
    HeuristicScore,
    JudgeScore,
    heuristic_score,
    judge_request,
    judge_sampled,
    parse_judge,
)

# ---------------------------------------------------------------------------------------------------
# Realistic bodies


def ask(prompt: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **extra}


def message(content: Any = "Paris.", **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "refusal": None, "annotations": [], **extra}


def chat(
    content: Any = "Paris.", *, finish_reason: str = "stop", choices: list[dict] | None = None, **extra: Any
) -> dict[str, Any]:
    """A chat.completion as OpenAI returns it, with one choice (or `choices`, as messages)."""
    messages = choices if choices is not None else [message(content, **extra)]
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": index, "message": msg, "logprobs": None, "finish_reason": finish_reason}
            for index, msg in enumerate(messages)
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17},
        "system_fingerprint": "fp_1",
    }


def function_call(name: str = "get_weather", arguments: Any = '{"city": "Paris"}') -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def custom_call(name: str = "run_sql", text: str = "SELECT 1") -> dict[str, Any]:
    return {"id": "call_2", "type": "custom", "custom": {"name": name, "input": text}}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SQL_TOOL = {"type": "custom", "custom": {"name": "run_sql"}}
LEGACY_FUNCTION = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
JSON_OBJECT = {"type": "json_object"}
PERSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}


def tool_answer(*calls: dict[str, Any]) -> dict[str, Any]:
    return chat(None, finish_reason="tool_calls", tool_calls=list(calls))


def test_the_example_bodies_are_real_chat_completions() -> None:
    for body in (chat(), tool_answer(function_call(), custom_call()), chat(None, refusal="No.")):
        ChatCompletion.model_validate(body)


# ---------------------------------------------------------------------------------------------------
# Heuristic rules

RULE_CASES: list[tuple[str, dict, dict, float, tuple[str, ...]]] = [
    # clean answers
    ("clean", ask(), chat(), 1.0, ()),
    ("clean_content_parts", ask(), chat([{"type": "text", "text": "Paris."}]), 1.0, ()),
    ("clean_audio", ask(), chat(None, audio={"id": "a1", "data": "", "transcript": "Paris."}), 1.0, ()),
    ("clean_text_format", ask(response_format={"type": "text"}), chat("not json"), 1.0, ()),
    # empty answers
    ("empty_string", ask(), chat(""), 0.0, ("empty_answer",)),
    ("empty_null", ask(), chat(None), 0.0, ("empty_answer",)),
    ("empty_whitespace", ask(), chat(" \n\t "), 0.0, ("empty_answer",)),
    ("empty_parts", ask(), chat([{"type": "image_url"}]), 0.0, ("empty_answer",)),
    ("empty_and_cut_off", ask(), chat(None, finish_reason="length"), 0.0, ("empty_answer", "truncated")),
    # cut off
    ("truncated", ask(), chat("The capital of France is", finish_reason="length"), 0.5, ("truncated",)),
    # refusals
    ("content_filter", ask(), chat(None, finish_reason="content_filter"), 0.2, ("refusal",)),
    ("refusal_field", ask(), chat(None, refusal="I can't help with that."), 0.2, ("refusal",)),
    ("refusal_phrase", ask(), chat("I can't help with that."), 0.2, ("refusal",)),
    (
        "refusal_in_json_mode_is_not_also_invalid_json",
        ask(response_format=JSON_OBJECT),
        chat("I'm sorry, but I cannot assist with that."),
        0.2,
        ("refusal",),
    ),
    ("structured_refusal", ask(response_format=PERSON_SCHEMA), chat(None, refusal="No."), 0.2, ("refusal",)),
    ("empty_refusal_field_is_none", ask(), chat("Paris.", refusal=""), 1.0, ()),
    # json_object
    ("json_object_ok", ask(response_format=JSON_OBJECT), chat('{"capital": "Paris"}'), 1.0, ()),
    ("json_object_padded", ask(response_format=JSON_OBJECT), chat('\n {"a": 1} \n'), 1.0, ()),
    ("json_object_prose", ask(response_format=JSON_OBJECT), chat('Sure! {"a": 1}'), 0.2, ("invalid_json",)),
    ("json_object_array", ask(response_format=JSON_OBJECT), chat("[1, 2]"), 0.2, ("invalid_json",)),
    (
        "json_object_fenced",
        ask(response_format=JSON_OBJECT),
        chat('```json\n{"a":1}\n```'),
        0.2,
        ("invalid_json",),
    ),
    (
        "json_cut_off",
        ask(response_format=JSON_OBJECT),
        chat('{"capital": "Par', finish_reason="length"),
        0.1,
        ("truncated", "invalid_json"),
    ),
    # json_schema
    ("schema_ok", ask(response_format=PERSON_SCHEMA), chat('{"name": "Ada", "age": 36}'), 1.0, ()),
    (
        "schema_missing_key",
        ask(response_format=PERSON_SCHEMA),
        chat('{"name": "Ada"}'),
        0.5,
        ("schema_mismatch",),
    ),
    ("schema_not_object", ask(response_format=PERSON_SCHEMA), chat('["Ada", 36]'), 0.5, ("schema_mismatch",)),
    ("schema_not_json", ask(response_format=PERSON_SCHEMA), chat("Ada, 36"), 0.2, ("invalid_json",)),
    (
        "schema_without_required",
        ask(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}},
            }
        ),
        chat("{}"),
        1.0,
        (),
    ),
    (
        "schema_array_root",
        ask(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}
        ),
        chat("[1]"),
        1.0,
        (),
    ),
    ("schema_unreadable", ask(response_format={"type": "json_schema"}), chat('"x"'), 1.0, ()),
    # tool calls
    ("tool_ok", ask(tools=[WEATHER_TOOL]), tool_answer(function_call()), 1.0, ()),
    ("tool_empty_args", ask(tools=[WEATHER_TOOL]), tool_answer(function_call(arguments="{}")), 1.0, ()),
    (
        "tool_with_text",
        ask(tools=[WEATHER_TOOL]),
        chat("Let me check.", finish_reason="tool_calls", tool_calls=[function_call()]),
        1.0,
        (),
    ),
    (
        "tool_in_json_mode",
        ask(tools=[WEATHER_TOOL], response_format=JSON_OBJECT),
        tool_answer(function_call()),
        1.0,
        (),
    ),
    (
        "tool_args_not_json",
        ask(tools=[WEATHER_TOOL]),
        tool_answer(function_call(arguments='{"city": "Par')),
        0.2,
        ("invalid_tool_arguments",),
    ),
    (
        "tool_args_not_object",
        ask(tools=[WEATHER_TOOL]),
        tool_answer(function_call(arguments='["Paris"]')),
        0.2,
        ("invalid_tool_arguments",),
    ),
    (
        "tool_args_not_string",
        ask(tools=[WEATHER_TOOL]),
        tool_answer(function_call(arguments={"city": "Paris"})),
        0.2,
        ("invalid_tool_arguments",),
    ),
    (
        "tool_unknown",
        ask(tools=[WEATHER_TOOL]),
        tool_answer(function_call("get_time", "{}")),
        0.2,
        ("unknown_tool",),
    ),
    ("tool_without_tools", ask(), tool_answer(function_call()), 0.2, ("unknown_tool",)),
    (
        "tool_unknown_and_bad_args",
        ask(tools=[WEATHER_TOOL]),
        tool_answer(function_call("get_time", "not json")),
        0.04,
        ("invalid_tool_arguments", "unknown_tool"),
    ),
    (
        "tool_rule_counts_once",
        ask(tools=[WEATHER_TOOL]),
        tool_answer(function_call(arguments="x"), function_call(arguments="y"), function_call()),
        0.2,
        ("invalid_tool_arguments",),
    ),
    ("custom_tool_ok", ask(tools=[SQL_TOOL]), tool_answer(custom_call()), 1.0, ()),
    ("custom_tool_unknown", ask(tools=[WEATHER_TOOL]), tool_answer(custom_call()), 0.2, ("unknown_tool",)),
    (
        "function_call_to_custom_tool",
        ask(tools=[SQL_TOOL]),
        tool_answer(function_call("run_sql", "{}")),
        0.2,
        ("unknown_tool",),
    ),
    (
        "legacy_function_call_ok",
        ask(functions=[LEGACY_FUNCTION]),
        chat(None, finish_reason="function_call", function_call={"name": "get_weather", "arguments": "{}"}),
        1.0,
        (),
    ),
    (
        "legacy_function_call_bad_args",
        ask(functions=[LEGACY_FUNCTION]),
        chat(None, finish_reason="function_call", function_call={"name": "get_weather", "arguments": "{"}),
        0.2,
        ("invalid_tool_arguments",),
    ),
    # combinations
    (
        "cut_off_tool_call",
        ask(tools=[WEATHER_TOOL]),
        chat(None, finish_reason="length", tool_calls=[function_call(arguments='{"ci')]),
        0.1,
        ("truncated", "invalid_tool_arguments"),
    ),
    (
        "two_choices_mean",
        ask(n=2),
        chat(choices=[message("Paris."), message("It is Paris, the")], finish_reason="length"),
        0.5,
        ("truncated",),
    ),
    (
        "two_choices_one_clean",
        ask(n=2),
        chat(choices=[message("Paris."), message("")]),
        0.5,
        ("empty_answer",),
    ),
    (
        "two_choices_reasons_in_rule_order",
        ask(n=2, response_format=JSON_OBJECT),
        chat(choices=[message("nope"), message(None, refusal="No.")]),
        0.2,
        ("refusal", "invalid_json"),
    ),
    # not a chat.completion
    ("malformed_empty_object", ask(), {}, 0.0, ("malformed_response",)),
    (
        "malformed_error_envelope",
        ask(),
        {"error": {"message": "Rate limit", "type": "rate_limit_error"}},
        0.0,
        ("malformed_response",),
    ),
    ("malformed_no_choices", ask(), {**chat(), "choices": []}, 0.0, ("malformed_response",)),
    ("malformed_choices_not_list", ask(), {**chat(), "choices": {"0": {}}}, 0.0, ("malformed_response",)),
    (
        "malformed_embedding",
        ask(),
        {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]},
        0.0,
        ("malformed_response",),
    ),
    (
        "malformed_text_completion",
        ask(),
        {"object": "text_completion", "choices": [{"text": "Paris", "index": 0}]},
        0.0,
        ("malformed_response",),
    ),
    (
        "malformed_no_message",
        ask(),
        {"choices": [{"index": 0, "finish_reason": "stop"}]},
        0.0,
        ("malformed_response",),
    ),
    ("malformed_content_number", ask(), chat(42), 0.0, ("malformed_response",)),
    ("malformed_refusal_object", ask(), chat("Paris.", refusal={"why": "no"}), 0.0, ("malformed_response",)),
    (
        "malformed_tool_calls_not_list",
        ask(),
        chat("x", tool_calls="get_weather"),
        0.0,
        ("malformed_response",),
    ),
]


@pytest.mark.parametrize(
    ("request_body", "response_body", "score", "reasons"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_rules(request_body: dict, response_body: dict, score: float, reasons: tuple[str, ...]) -> None:
    assert heuristic_score(request_body, response_body) == HeuristicScore(score, reasons)


def test_a_lenient_compatible_server_answer_is_still_scored() -> None:
    # No `object`, no `id`: some OpenAI-compatible servers omit them; the choices are what matters.
    body = {"choices": [{"message": {"content": "Paris."}, "finish_reason": "stop"}]}
    assert heuristic_score(ask(), body) == HeuristicScore(1.0, ())


def test_the_docstring_documents_every_rule_with_its_penalty() -> None:
    for code, factor in PENALTIES.items():
        assert f"`{code}` → {factor:g}" in scoring.__doc__


REFUSALS = [
    "I can't help with that.",
    "I cannot assist with this request.",
    "I can not help with that",
    "I’m sorry, but I can’t help with that.",
    "I'm sorry, I can't comply with that request.",
    "Sorry, but I cannot help with creating malware.",
    "Sorry, I won't help with that.",
    "I am unable to help with that request.",
    "I'm not able to assist with that.",
    "I apologize, but I cannot assist with that.",
    "  I CAN'T HELP WITH THAT.",
    "I can't help.",
]
NOT_REFUSALS = [
    "I can't help but notice that the loop never ends.",
    "I can help with that! Here is the plan.",
    "I'm happy to assist.",
    "The answer is 42. I can't help with anything beyond that.",
    "I cannot stress enough how important tests are.",
    "I can't helpfully guess without the logs, but the likely cause is a race.",
    "Sorry for the delay: the capital is Paris.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusal_phrases(text: str) -> None:
    assert heuristic_score(ask(), chat(text)).reasons == ("refusal",)


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_not_refusal_phrases(text: str) -> None:
    assert heuristic_score(ask(), chat(text)) == HeuristicScore(1.0, ())


# ---------------------------------------------------------------------------------------------------
# Never raises

GARBAGE_RESPONSES: list[Any] = [
    None,
    "",
    "chat.completion",
    42,
    4.2,
    True,
    [],
    [chat()],
    {"choices": None},
    {"choices": [None]},
    {"choices": ["Paris"]},
    {"choices": [{"message": None}]},
    {"choices": [{"message": "Paris"}]},
    {"choices": [{"message": {"content": {"text": "Paris"}}}]},
    {"choices": [{"message": {"content": [None, 1, "x", {"text": 2}, {"type": "text", "text": "ok"}]}}]},
    {"choices": [{"message": {"content": "x", "finish_reason": ["length"]}}], "object": ["chat.completion"]},
    {"choices": [{"message": {"content": "x", "tool_calls": [None, 1, "x", {}, {"function": "f"}]}}]},
    {"choices": [{"message": {"tool_calls": [{"function": {"name": ["unhashable"], "arguments": None}}]}}]},
    {"choices": [{"message": {"tool_calls": [{"type": "custom", "custom": {"name": {"x": 1}}}]}}]},
    {"choices": [{"message": {"content": None, "function_call": "get_weather"}}]},
    {"choices": [{"message": {"content": None, "audio": {"transcript": 5}}}]},
    {"choices": [{"message": {"content": "x"}, "finish_reason": {"length": True}}]},
    {"object": None, "choices": [{"message": {"content": "x"}}]},
]
GARBAGE_REQUESTS: list[Any] = [
    None,
    [],
    "gpt-4o",
    {"response_format": "json"},
    {"response_format": {"type": ["json_object"]}},
    {"response_format": {"type": "json_schema", "json_schema": "person"}},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {"required": "name"}}}},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {"required": [1, None, ["x"]]}}}},
    {"tools": "all"},
    {"tools": [None, 1, {"type": "function", "function": None}, {"type": ["x"]}, {"type": {"a": 1}}]},
    {"functions": [None, {"name": ["x"]}]},
    {"messages": "hi"},
    {"messages": [None, 1, {"role": ["user"], "content": 5}, {"content": [None, {"type": ["x"]}]}]},
]
HOSTILE_TEXTS = [
    "[" * 100_000,  # json.loads would hit the recursion limit
    "1" * 5_000,  # past Python's int-string digit limit
    '{"a": "\\ud800"}',  # a lone surrogate once parsed
    "\ud800 lone surrogate",
    "\0\0\0",
    "x" * 1_000_000,
]


def assert_sane(result: Any) -> None:
    assert isinstance(result, HeuristicScore)
    assert 0.0 <= result.score <= 1.0
    assert set(result.reasons) <= set(PENALTIES)
    assert (result.score == 1.0) == (not result.reasons)


@pytest.mark.parametrize("response_body", GARBAGE_RESPONSES, ids=lambda body: repr(body)[:60])
@pytest.mark.parametrize("request_body", [ask(), *GARBAGE_REQUESTS], ids=lambda body: repr(body)[:60])
def test_garbage_never_raises(request_body: Any, response_body: Any) -> None:
    assert_sane(heuristic_score(request_body, response_body))
    json.dumps(judge_request(request_body, response_body, model="judge"))
    assert parse_judge(response_body) is None or isinstance(parse_judge(response_body), JudgeScore)


@pytest.mark.parametrize("response_format", [JSON_OBJECT, PERSON_SCHEMA, None])
@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=lambda text: repr(text)[:30])
def test_hostile_texts_never_raise(text: str, response_format: dict | None) -> None:
    request = ask(text, response_format=response_format, tools=[WEATHER_TOOL])
    for response in (chat(text), tool_answer(function_call(text, text)), chat(None, refusal=text)):
        assert_sane(heuristic_score(request, response))
        json.dumps(judge_request(request, response, model="judge"), ensure_ascii=False).encode("utf-8")
    assert parse_judge(chat(text)) is None


GARBAGE_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    float("nan"),
    float("inf"),
    True,
    "",
    "x",
    "[",
    "\ud800",
    [],
    [None],
    {},
    {"": None},
    {"type": "custom"},
]


def mutated(value: Any, rng: random.Random) -> Any:
    """`value` with one node (possibly itself) replaced by garbage."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: mutated(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [*value[:index], mutated(value[index], rng), *value[index + 1 :]]
    return rng.choice(GARBAGE_VALUES)


def test_random_mutations_of_real_bodies_never_raise() -> None:
    rng = random.Random(20_240_601)
    pairs = [(case[1], case[2]) for case in RULE_CASES]
    for _ in range(3_000):
        request_body, response_body = rng.choice(pairs)
        if rng.random() < 0.5:
            request_body = mutated(request_body, rng)
        else:
            response_body = mutated(response_body, rng)
        assert_sane(heuristic_score(request_body, response_body))
        judge_request(request_body, response_body, model="judge")
        parse_judge(response_body)


# ---------------------------------------------------------------------------------------------------
# Judge sampling

IDS = [f"request-{n}" for n in range(10_000)]


def test_sampling_is_deterministic() -> None:
    first = [judge_sampled("batch_abc", custom_id, 0.1) for custom_id in IDS]
    assert first == [judge_sampled("batch_abc", custom_id, 0.1) for custom_id in IDS]
    # Pinned: changing the hash scheme re-samples every line, so it must be a deliberate change.
    assert sample_point("batch_abc", "request-1") == pytest.approx(0.277891142426, abs=1e-12)


def test_rate_bounds() -> None:
    assert not any(judge_sampled("batch_abc", custom_id, 0.0) for custom_id in IDS)
    assert all(judge_sampled("batch_abc", custom_id, 1.0) for custom_id in IDS)
    assert not judge_sampled("batch_abc", "x", float("nan"))
    assert not judge_sampled("batch_abc", "x", -0.5)
    assert judge_sampled("batch_abc", "x", 1.5)


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.1, 0.25, 0.5, 0.9])
def test_sampled_fraction_matches_rate(rate: float) -> None:
    fraction = sum(judge_sampled("batch_abc", custom_id, rate) for custom_id in IDS) / len(IDS)
    assert fraction == pytest.approx(rate, abs=0.02)


def test_raising_the_rate_only_adds_lines() -> None:
    low = {custom_id for custom_id in IDS if judge_sampled("batch_abc", custom_id, 0.1)}
    high = {custom_id for custom_id in IDS if judge_sampled("batch_abc", custom_id, 0.3)}
    assert low < high


def test_batches_sample_independently() -> None:
    # The same custom_ids (request-0, request-1...) in two batches are not the same sample.
    one = {custom_id for custom_id in IDS if judge_sampled("batch_one", custom_id, 0.5)}
    two = {custom_id for custom_id in IDS if judge_sampled("batch_two", custom_id, 0.5)}
    assert len(one & two) / len(IDS) == pytest.approx(0.25, abs=0.03)


def test_any_custom_id_can_be_sampled() -> None:
    for custom_id in ("", "\ud800", "a\0b", "é" * 10_000):
        assert judge_sampled("batch_abc", custom_id, 1.0)
        assert 0.0 <= sample_point("batch_abc", custom_id) < 1.0


# ---------------------------------------------------------------------------------------------------
# Judge request

CREATE_PARAMS = TypeAdapter(CompletionCreateParamsNonStreaming)
MESSAGES = TypeAdapter(list[ChatCompletionMessageParam])


def user_material(body: dict[str, Any]) -> str:
    return body["messages"][1]["content"]


def test_judge_request_is_a_cheap_strict_json_chat_request() -> None:
    body = judge_request(ask(), chat(), model="gpt-4o-mini")
    CREATE_PARAMS.validate_python(body)
    MESSAGES.validate_python(body["messages"])  # the params adapter checks messages lazily
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0
    assert body["max_tokens"] == JUDGE_MAX_TOKENS <= 300
    assert [message["role"] for message in body["messages"]] == ["system", "user"]
    assert '"grade"' in body["messages"][0]["content"] and '"reason"' in body["messages"][0]["content"]


def test_judge_request_carries_the_conversation_and_the_answer() -> None:
    request = ask(
        tools=[WEATHER_TOOL, SQL_TOOL],
        response_format=JSON_OBJECT,
        messages=[
            {"role": "system", "content": "You are a weather bot."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the weather where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [function_call()]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        ],
    )
    material = user_material(judge_request(request, chat('{"answer": "21 °C and sunny"}'), model="judge"))
    for expected in (
        "Tools offered to the assistant: get_weather, run_sql.",
        "asked for JSON output (json_object)",
        "### system\nYou are a weather bot.",
        "What is the weather where this photo was taken?[image_url part]",
        '[tool call] get_weather({"city": "Paris"})',
        '### tool\n{"temp_c": 21}',
        '<answer>\n{"answer": "21 °C and sunny"}\n</answer>',
    ):
        assert expected in material
    assert "base64" not in material


def test_judge_request_shows_tool_calls_refusals_and_cut_offs_in_the_answer() -> None:
    material = user_material(judge_request(ask(), tool_answer(function_call(), custom_call()), model="judge"))
    assert (
        '<answer>\n[tool call] get_weather({"city": "Paris"})\n[tool call] run_sql(SELECT 1)\n</answer>'
        in material
    )
    material = user_material(judge_request(ask(), chat(None, refusal="No."), model="judge"))
    assert "[refusal] No." in material
    material = user_material(judge_request(ask(), chat("The capital is", finish_reason="length"), model="j"))
    assert "The capital is\n[the answer ended with finish_reason length]" in material
    assert "[empty answer]" in user_material(judge_request(ask(), chat(""), model="judge"))
    assert "[no readable answer]" in user_material(judge_request(ask(), {}, model="judge"))


def test_judge_request_cuts_long_messages_keeping_both_ends() -> None:
    prompt = "BEGIN " + "lorem ipsum " * 10_000 + " Summarize the above. END"
    answer = "START " + "word " * 10_000 + " FINISH"
    material = user_material(judge_request(ask(prompt), chat(answer), model="judge"))
    for kept in ("BEGIN", "Summarize the above. END", "START", "FINISH", "[cut by the grader: "):
        assert kept in material
    assert len(material) < MESSAGE_CHAR_BUDGET + ANSWER_CHAR_BUDGET + 500


def test_judge_request_keeps_the_first_and_last_messages_of_a_long_conversation() -> None:
    turns = [{"role": "system", "content": "INSTRUCTIONS"}]
    turns += [{"role": "user", "content": f"turn {n}."} for n in range(20)]
    material = user_material(judge_request(ask(messages=turns), chat(), model="judge"))
    kept = MAX_CONVERSATION_MESSAGES - 1
    assert "INSTRUCTIONS" in material
    assert (
        f"[cut by the grader: {len(turns) - MAX_CONVERSATION_MESSAGES} earlier messages omitted]" in material
    )
    assert all(f"turn {n}." in material for n in range(20 - kept, 20))
    assert not any(f"turn {n}." in material for n in range(20 - kept))


def test_judge_request_stays_cheap_whatever_the_line() -> None:
    huge = "x" * 200_000
    request = ask(
        messages=[{"role": "user", "content": huge} for _ in range(100)], tools=[WEATHER_TOOL] * 500
    )
    body = judge_request(request, chat(huge), model="judge")
    assert len(json.dumps(body)) < 50_000


# ---------------------------------------------------------------------------------------------------
# Judge answer


def judge_answer(content: Any) -> dict[str, Any]:
    return chat(content if isinstance(content, str | None) else json.dumps(content))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"grade": 8, "reason": "Correct and concise."}, JudgeScore(0.7778, "Correct and concise.")),
        ({"grade": 1, "reason": "Wrong."}, JudgeScore(0.0, "Wrong.")),
        ({"grade": 10, "reason": "Perfect."}, JudgeScore(1.0, "Perfect.")),
        ({"grade": 5.5, "reason": "Partly right."}, JudgeScore(0.5, "Partly right.")),
        ({"grade": 7}, JudgeScore(0.6667, "")),
        ({"grade": 7, "reason": 3}, JudgeScore(0.6667, "")),
        ({"reason": "fine", "grade": 4, "extra": True}, JudgeScore(0.3333, "fine")),
        ('```json\n{"grade": 9, "reason": "Good."}\n```', JudgeScore(0.8889, "Good.")),
        ('  {"grade": 2, "reason": "  Off\\ntopic.  "}  ', JudgeScore(0.1111, "Off topic.")),
    ],
)
def test_parse_judge_reads_a_usable_answer(content: Any, expected: JudgeScore) -> None:
    assert parse_judge(judge_answer(content)) == expected


@pytest.mark.parametrize(
    "content",
    [
        "8",
        "Grade: 8. The answer is correct.",
        "",
        None,
        "null",
        "[8, 'ok']",
        '{"grade": 8',
        {"score": 8, "reason": "wrong key"},
        {"grade": 0, "reason": "too low"},
        {"grade": 11, "reason": "too high"},
        {"grade": -3},
        {"grade": "8", "reason": "a string"},
        {"grade": True, "reason": "a bool"},
        {"grade": None},
        {"grade": [8]},
        '{"grade": NaN}',
        '{"grade": Infinity}',
        "[" * 100_000,
    ],
    ids=lambda content: repr(content)[:40],
)
def test_parse_judge_refuses_an_unusable_answer(content: Any) -> None:
    assert parse_judge(judge_answer(content)) is None


@pytest.mark.parametrize("body", [None, {}, [], "x", {"choices": []}, {"error": {"message": "overloaded"}}])
def test_parse_judge_refuses_a_body_that_is_not_a_chat_completion(body: Any) -> None:
    assert parse_judge(body) is None


def test_parse_judge_cleans_the_reason_for_storage() -> None:
    reason = "Good\0 answer \ud800 but\n\nlong " + "very " * 1_000
    score = parse_judge(judge_answer(json.dumps({"grade": 6, "reason": reason})))
    assert score is not None
    assert "\0" not in score.reason and "\n" not in score.reason
    score.reason.encode("utf-8")  # no unpaired surrogate left
    assert score.reason.startswith("Good answer ? but long very")
    assert len(score.reason) == REASON_MAX_CHARS
