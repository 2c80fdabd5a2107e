"""OpenAI ⇄ Anthropic translation (contract §4): request bodies → `params`, results → chat.completion /
`ResultLine`, and the custom_id scheme. Outputs are checked against the official SDK types too."""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterable
from typing import Any

import pytest
from anthropic.types import Message
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatchIndividualResponse
from openai.types.chat import ChatCompletion
from pydantic import TypeAdapter

from batchway.upstreams.anthropic.translate import (
    REMAP_PREFIX,
    UnreadableResult,
    UntranslatableRequest,
    anthropic_custom_id,
    client_custom_id,
    is_anthropic_custom_id,
    needs_remap,
    remapped_custom_id,
    remapped_line_number,
    result_line_from_anthropic,
    to_anthropic_params,
    to_openai_completion,
)
from batchway.upstreams.anthropic.translate_request import DROPPED_FIELDS
from batchway.upstreams.result_line import ResultLine

MODEL = "claude-sonnet-4-5"
DEFAULT_MAX_TOKENS = 4096
CREATED = 1_760_000_000
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PDF_B64 = (
    "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0Y="
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
TIME_TOOL_ANTHROPIC = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any = None, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **extra}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages), **fields}


def expected(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": DEFAULT_MAX_TOKENS, "messages": list(messages), **fields}


# --- SDK type checks -------------------------------------------------------------------------------------

ANTHROPIC_PARAMS = TypeAdapter(MessageCreateParamsNonStreaming)
# anthropic >= 1.0 dropped these from MessageCreateParams (contract §0.2); the API still takes them.
PARAMS_OUTSIDE_SDK_TYPES = {"temperature", "top_p"}


def _materialize(value: Any) -> Any:
    """Plain dicts/lists from what pydantic returns for TypedDicts (it validates `Iterable` fields lazily,
    so walking them is what runs the validation of every message and block)."""
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {key: _materialize(item) for key, item in value.items()}
    if isinstance(value, Iterable):
        return [_materialize(item) for item in value]
    return value


def assert_valid_anthropic_params(params: dict[str, Any]) -> None:
    """The params fit the SDK's `MessageCreateParamsNonStreaming`: required keys and every block shape.
    Pydantic drops keys a TypedDict does not declare, so equality also catches stray keys in blocks."""
    validated = _materialize(ANTHROPIC_PARAMS.validate_python(params))
    assert validated == {key: value for key, value in params.items() if key not in PARAMS_OUTSIDE_SDK_TYPES}
    assert params.get("stream") is None


def assert_valid_chat_completion(body: dict[str, Any]) -> None:
    completion = ChatCompletion.model_validate(body)
    assert completion.model_dump(mode="json", exclude_unset=True) == body


# --- requests: translated ------------------------------------------------------------------------------

TRANSLATED_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "plain chat",
        chat(user("Hello")),
        expected(user("Hello")),
    ),
    (
        "system prompt as a string",
        chat({"role": "system", "content": "Be brief."}, user("Hi")),
        expected(user("Hi"), system="Be brief."),
    ),
    (
        "system and developer prompts become text blocks in order",
        chat(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in French."},
            user("Hi"),
        ),
        expected(user("Hi"), system=[text("Be brief."), text("Answer in French.")]),
    ),
    (
        "system content parts become text blocks",
        chat({"role": "system", "content": [text("Rule one."), text("Rule two.")]}, user("Hi")),
        expected(user("Hi"), system=[text("Rule one."), text("Rule two.")]),
    ),
    (
        "a system message mid-conversation is lifted",
        chat(user("Hi"), assistant("Hello!"), {"role": "system", "content": "Now be rude."}, user("Bye")),
        expected(
            user("Hi"), {"role": "assistant", "content": [text("Hello!")]}, user("Bye"), system="Now be rude."
        ),
    ),
    (
        "multi-turn, message names dropped",
        chat(
            user("What is 2+2?"),
            assistant("4", name="bot"),
            {"role": "user", "content": "And 3+3?", "name": "ann"},
        ),
        expected(user("What is 2+2?"), {"role": "assistant", "content": [text("4")]}, user("And 3+3?")),
    ),
    (
        "consecutive user messages are merged",
        chat(user("First."), user([text("Second.")])),
        expected(user([text("First."), text("Second.")])),
    ),
    (
        "a single text part is sent as a string",
        chat(user([text("Only part.")])),
        expected(user("Only part.")),
    ),
    (
        "image by http(s) url, detail dropped",
        chat(
            user(
                [
                    text("What is in this image?"),
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.png", "detail": "high"},
                    },
                ]
            )
        ),
        expected(
            user(
                [
                    text("What is in this image?"),
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                ]
            )
        ),
    ),
    (
        "image by base64 data URL",
        chat(user([{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}])),
        expected(
            user(
                [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]
            )
        ),
    ),
    (
        "image/jpg is read as image/jpeg",
        chat(user([{"type": "image_url", "image_url": {"url": "data:image/JPG;base64,/9j/4AAQ"}}])),
        expected(
            user(
                [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
                    }
                ]
            )
        ),
    ),
    (
        "PDF file part becomes a document block",
        chat(
            user(
                [
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": f"data:application/pdf;base64,{PDF_B64}",
                        },
                    },
                    text("Summarize this."),
                ]
            )
        ),
        expected(
            user(
                [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    },
                    text("Summarize this."),
                ]
            )
        ),
    ),
    (
        "PDF as bare base64",
        chat(user([{"type": "file", "file": {"file_data": PDF_B64}}])),
        expected(
            user(
                [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    }
                ]
            )
        ),
    ),
    (
        "tools with auto tool_choice; strict dropped, no parameters gets an empty schema",
        chat(user("Weather in Paris?"), tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="auto"),
        expected(
            user("Weather in Paris?"),
            tools=[WEATHER_TOOL_ANTHROPIC, TIME_TOOL_ANTHROPIC],
            tool_choice={"type": "auto"},
        ),
    ),
    (
        "tool_choice required → any",
        chat(user("Weather?"), tools=[WEATHER_TOOL], tool_choice="required"),
        expected(user("Weather?"), tools=[WEATHER_TOOL_ANTHROPIC], tool_choice={"type": "any"}),
    ),
    (
        "tool_choice none",
        chat(user("Weather?"), tools=[WEATHER_TOOL], tool_choice="none"),
        expected(user("Weather?"), tools=[WEATHER_TOOL_ANTHROPIC], tool_choice={"type": "none"}),
    ),
    (
        "named tool_choice",
        chat(
            user("Weather?"),
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        ),
        expected(
            user("Weather?"),
            tools=[WEATHER_TOOL_ANTHROPIC],
            tool_choice={"type": "tool", "name": "get_weather"},
        ),
    ),
    (
        "parallel_tool_calls false without tool_choice",
        chat(user("Weather?"), tools=[WEATHER_TOOL], parallel_tool_calls=False),
        expected(
            user("Weather?"),
            tools=[WEATHER_TOOL_ANTHROPIC],
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        ),
    ),
    (
        "parallel_tool_calls false with required",
        chat(user("Weather?"), tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False),
        expected(
            user("Weather?"),
            tools=[WEATHER_TOOL_ANTHROPIC],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        ),
    ),
    (
        "parallel_tool_calls false leaves none alone",
        chat(user("Weather?"), tools=[WEATHER_TOOL], tool_choice="none", parallel_tool_calls=False),
        expected(user("Weather?"), tools=[WEATHER_TOOL_ANTHROPIC], tool_choice={"type": "none"}),
    ),
    (
        "tool_choice and parallel_tool_calls without tools are dropped",
        chat(user("Hi"), tool_choice="auto", parallel_tool_calls=False),
        expected(user("Hi")),
    ),
    (
        "assistant tool_calls and several tool results in one user turn",
        chat(
            user("Weather in Paris and Rome?"),
            assistant(
                "Checking both.",
                tool_calls=[
                    tool_call("call_1", "get_weather", '{"city": "Paris"}'),
                    tool_call("call_2", "get_weather", '{"city": "Rome"}'),
                ],
            ),
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [text("22C"), text("cloudy")]},
            user("Which is warmer?"),
            tools=[WEATHER_TOOL],
        ),
        expected(
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": [
                    text("Checking both."),
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            user(
                [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [text("22C"), text("cloudy")],
                    },
                    text("Which is warmer?"),
                ]
            ),
            tools=[WEATHER_TOOL_ANTHROPIC],
        ),
    ),
    (
        "tool-call-only assistant turn (null content), empty arguments, empty tool result",
        chat(
            user("Time?"),
            assistant(None, tool_calls=[tool_call("call_9", "get_time", "")]),
            {"role": "tool", "tool_call_id": "call_9", "content": ""},
            tools=[TIME_TOOL],
        ),
        expected(
            user("Time?"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_9", "name": "get_time", "input": {}}],
            },
            user([{"type": "tool_result", "tool_use_id": "call_9"}]),
            tools=[TIME_TOOL_ANTHROPIC],
        ),
    ),
    (
        "tool_result blocks go first even after a user text",
        chat(
            user("Time?"),
            assistant(None, tool_calls=[tool_call("call_9", "get_time", "{}")]),
            user("(answer quickly)"),
            {"role": "tool", "tool_call_id": "call_9", "content": "12:00"},
            tools=[TIME_TOOL],
        ),
        expected(
            user("Time?"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_9", "name": "get_time", "input": {}}],
            },
            user(
                [
                    {"type": "tool_result", "tool_use_id": "call_9", "content": "12:00"},
                    text("(answer quickly)"),
                ]
            ),
            tools=[TIME_TOOL_ANTHROPIC],
        ),
    ),
    (
        "legacy functions, function_call and a function message with an id",
        chat(
            user("Time?"),
            assistant(None, tool_calls=[tool_call("call_3", "get_time", "{}")]),
            {"role": "function", "name": "get_time", "tool_call_id": "call_3", "content": "noon"},
            functions=[{"name": "get_time", "parameters": {"type": "object", "properties": {}}}],
            function_call={"name": "get_time"},
        ),
        expected(
            user("Time?"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_3", "name": "get_time", "input": {}}],
            },
            user([{"type": "tool_result", "tool_use_id": "call_3", "content": "noon"}]),
            tools=[TIME_TOOL_ANTHROPIC],
            tool_choice={"type": "tool", "name": "get_time"},
        ),
    ),
    (
        "empty assistant messages are skipped, blank text parts dropped, refusal parts kept as text",
        chat(
            user([text("Hi"), text("   ")]),
            assistant(""),
            assistant([{"type": "refusal", "refusal": "I can't help with that."}]),
            user("Why?"),
        ),
        expected(
            user("Hi"), {"role": "assistant", "content": [text("I can't help with that.")]}, user("Why?")
        ),
    ),
    (
        "stop as a string",
        chat(user("Count"), stop="\n\n"),
        expected(user("Count"), stop_sequences=["\n\n"]),
    ),
    (
        "stop as a list; null stop and empty sequences dropped",
        chat(user("Count"), stop=["END", "", "STOP"]),
        expected(user("Count"), stop_sequences=["END", "STOP"]),
    ),
    ("stop null", chat(user("Count"), stop=None), expected(user("Count"))),
    ("temperature", chat(user("Hi"), temperature=0.2), expected(user("Hi"), temperature=0.2)),
    (
        "temperature 0 and 1 are in range",
        chat(user("Hi"), temperature=0),
        expected(user("Hi"), temperature=0),
    ),
    ("top_p", chat(user("Hi"), top_p=0.9), expected(user("Hi"), top_p=0.9)),
    (
        "top_p 1 is a no-op and dropped",
        chat(user("Hi"), temperature=0.3, top_p=1),
        expected(user("Hi"), temperature=0.3),
    ),
    (
        "temperature 1 (Anthropic's default) gives way to top_p",
        chat(user("Hi"), temperature=1.0, top_p=0.5),
        expected(user("Hi"), top_p=0.5),
    ),
    (
        "max_completion_tokens wins over max_tokens",
        chat(user("Hi"), max_completion_tokens=200, max_tokens=100),
        {**expected(user("Hi")), "max_tokens": 200},
    ),
    ("max_tokens", chat(user("Hi"), max_tokens=100), {**expected(user("Hi")), "max_tokens": 100}),
    (
        "null max_completion_tokens falls back to max_tokens",
        chat(user("Hi"), max_completion_tokens=None, max_tokens=100),
        {**expected(user("Hi")), "max_tokens": 100},
    ),
    (
        "response_format json_schema → output_config.format",
        chat(
            user("Extract the name."),
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "person",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                },
            },
        ),
        expected(
            user("Extract the name."),
            output_config={
                "format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                }
            },
        ),
    ),
    (
        "response_format text is dropped",
        chat(user("Hi"), response_format={"type": "text"}),
        expected(user("Hi")),
    ),
    (
        "user → metadata.user_id",
        chat(user("Hi"), user="user-1234"),
        expected(user("Hi"), metadata={"user_id": "user-1234"}),
    ),
    (
        "safety_identifier wins over user",
        chat(user("Hi"), user="legacy", safety_identifier="hash-abc"),
        expected(user("Hi"), metadata={"user_id": "hash-abc"}),
    ),
    (
        "harmless values of checked fields pass",
        chat(
            user("Hi"), n=1, stream=False, logprobs=False, top_logprobs=None, modalities=["text"], audio=None
        ),
        expected(user("Hi")),
    ),
    (
        "dropped fields",
        chat(
            user("Hi"),
            metadata={"project": "x"},
            store=True,
            service_tier="flex",
            seed=42,
            prompt_cache_key="k1",
            prompt_cache_options={"mode": "implicit"},
            prompt_cache_retention="24h",
            stream_options={"include_usage": True},
            logit_bias={"50256": -100},
            presence_penalty=0.5,
            frequency_penalty=0.5,
            prediction={"type": "content", "content": "Hello"},
            web_search_options={},
            verbosity="low",
            reasoning_effort="high",
        ),
        expected(user("Hi")),
    ),
]


@pytest.mark.parametrize(
    ("body", "want"), [case[1:] for case in TRANSLATED_REQUESTS], ids=[c[0] for c in TRANSLATED_REQUESTS]
)
def test_request_translation(body: dict[str, Any], want: dict[str, Any]) -> None:
    original = copy.deepcopy(body)
    params = to_anthropic_params(body, default_max_tokens=DEFAULT_MAX_TOKENS)
    assert params == want
    assert body == original  # the client's body is not modified
    assert_valid_anthropic_params(params)


def test_every_dropped_field_is_covered_by_the_table() -> None:
    dropped_case = next(case for case in TRANSLATED_REQUESTS if case[0] == "dropped fields")
    assert set(dropped_case[1]) - {"model", "messages"} == DROPPED_FIELDS


def test_translated_params_do_not_share_the_clients_objects() -> None:
    """The tool schema is shared (read-only use), but a default schema must not be one shared dict that
    a later caller could mutate for every request."""
    first = to_anthropic_params(chat(user("a"), tools=[TIME_TOOL]), default_max_tokens=10)
    first["tools"][0]["input_schema"]["properties"]["x"] = {}
    second = to_anthropic_params(chat(user("a"), tools=[TIME_TOOL]), default_max_tokens=10)
    assert second["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


# --- requests: untranslatable --------------------------------------------------------------------------

UNTRANSLATABLE: list[tuple[str, Any, str, str]] = [
    ("body not an object", ["not", "a", "dict"], "body", "JSON object"),
    ("n > 1", chat(user("Hi"), n=3), "body.n", "one choice per request"),
    ("stream", chat(user("Hi"), stream=True), "body.stream", "Streaming"),
    ("logprobs", chat(user("Hi"), logprobs=True), "body.logprobs", "log probabilities"),
    ("top_logprobs", chat(user("Hi"), top_logprobs=5), "body.top_logprobs", "log probabilities"),
    (
        "audio modality",
        chat(user("Hi"), modalities=["text", "audio"]),
        "body.modalities",
        "only produce text",
    ),
    ("audio output", chat(user("Hi"), audio={"voice": "alloy", "format": "wav"}), "body.audio", "audio"),
    (
        "moderation",
        chat(user("Hi"), moderation={"model": "omni-moderation-latest"}),
        "body.moderation",
        "moderation",
    ),
    ("unknown field", chat(user("Hi"), top_k=5), "body.top_k", "Unrecognized request argument 'top_k'"),
    ("missing model", {"messages": [user("Hi")]}, "body.model", "model"),
    ("no messages", chat(), "body.messages", "non-empty array"),
    ("messages not a list", {"model": MODEL, "messages": "Hi"}, "body.messages", "non-empty array"),
    (
        "only a system message",
        chat({"role": "system", "content": "Be brief."}),
        "body.messages",
        "at least one user",
    ),
    (
        "unknown role",
        chat(user("Hi"), {"role": "critic", "content": "Meh"}),
        "body.messages[1].role",
        "critic",
    ),
    ("role missing", chat({"content": "Hi"}), "body.messages[0].role", "Unknown message role"),
    ("message not an object", chat("Hi"), "body.messages[0]", "object"),
    ("empty user message", chat(user("")), "body.messages[0].content", "empty content"),
    ("user content null", chat(user(None)), "body.messages[0].content", "string or an array"),
    (
        "input_audio part",
        chat(
            user(
                [
                    text("Transcribe"),
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                ]
            )
        ),
        "body.messages[0].content[1].type",
        "audio input",
    ),
    (
        "unknown content part type",
        chat(user([{"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}])),
        "body.messages[0].content[0].type",
        "'video_url'",
    ),
    ("content part without type", chat(user([{"text": "Hi"}])), "body.messages[0].content[0].type", "'type'"),
    (
        "text part without text",
        chat(user([{"type": "text"}])),
        "body.messages[0].content[0].text",
        "string 'text'",
    ),
    (
        "image media type not supported",
        chat(user([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}])),
        "body.messages[0].content[0].image_url.url",
        "image/bmp",
    ),
    (
        "image data URL not base64",
        chat(user([{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}])),
        "body.messages[0].content[0].image_url.url",
        "base64",
    ),
    (
        "image URL scheme",
        chat(user([{"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}}])),
        "body.messages[0].content[0].image_url.url",
        "http(s)",
    ),
    (
        "image without url",
        chat(user([{"type": "image_url", "image_url": {}}])),
        "body.messages[0].content[0].image_url.url",
        "image_url.url",
    ),
    (
        "file by id",
        chat(user([{"type": "file", "file": {"file_id": "file-abc"}}])),
        "body.messages[0].content[0].file.file_id",
        "file_id",
    ),
    (
        "file that is not a PDF",
        chat(user([{"type": "file", "file": {"file_data": "data:text/csv;base64,YSxiCg=="}}])),
        "body.messages[0].content[0].file.file_data",
        "Only PDF",
    ),
    (
        "bare base64 that is not a PDF",
        chat(user([{"type": "file", "file": {"file_data": "YSxiCg=="}}])),
        "body.messages[0].content[0].file.file_data",
        "Only PDF",
    ),
    (
        "image part in a system message",
        chat(
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]},
            user("Hi"),
        ),
        "body.messages[0].content[0].type",
        "only text",
    ),
    (
        "invalid tool arguments JSON",
        chat(user("Hi"), assistant(None, tool_calls=[tool_call("call_1", "get_weather", '{"city": ')])),
        "body.messages[1].tool_calls[0].function.arguments",
        "not valid JSON",
    ),
    (
        "tool arguments not an object",
        chat(user("Hi"), assistant(None, tool_calls=[tool_call("call_1", "get_weather", '["Paris"]')])),
        "body.messages[1].tool_calls[0].function.arguments",
        "JSON object",
    ),
    (
        "tool call without id",
        chat(
            user("Hi"),
            assistant(None, tool_calls=[{"type": "function", "function": {"name": "f", "arguments": "{}"}}]),
        ),
        "body.messages[1].tool_calls[0].id",
        "'id'",
    ),
    (
        "custom tool call",
        chat(
            user("Hi"),
            assistant(
                None, tool_calls=[{"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}]
            ),
        ),
        "body.messages[1].tool_calls[0].type",
        "'custom'",
    ),
    (
        "assistant function_call",
        chat(user("Hi"), assistant(None, function_call={"name": "f", "arguments": "{}"})),
        "body.messages[1].function_call",
        "tool_calls",
    ),
    (
        "assistant audio",
        chat(user("Hi"), assistant(None, audio={"id": "audio_1"})),
        "body.messages[1].audio",
        "transcript",
    ),
    (
        "tool message without tool_call_id",
        chat(user("Hi"), {"role": "tool", "content": "42"}),
        "body.messages[1].tool_call_id",
        "tool_call_id",
    ),
    (
        "function message without an id",
        chat(user("Hi"), {"role": "function", "name": "f", "content": "42"}),
        "body.messages[1].tool_call_id",
        "'function' message",
    ),
    ("temperature above 1", chat(user("Hi"), temperature=1.5), "body.temperature", "between 0 and 1"),
    ("negative temperature", chat(user("Hi"), temperature=-0.1), "body.temperature", "between 0 and 1"),
    ("temperature not a number", chat(user("Hi"), temperature="hot"), "body.temperature", "between 0 and 1"),
    ("top_p above 1", chat(user("Hi"), top_p=1.2), "body.top_p", "between 0 and 1"),
    ("temperature and top_p", chat(user("Hi"), temperature=0.5, top_p=0.9), "body.top_p", "together"),
    ("max_tokens 0", chat(user("Hi"), max_tokens=0), "body.max_tokens", "positive integer"),
    (
        "max_completion_tokens a string",
        chat(user("Hi"), max_completion_tokens="100"),
        "body.max_completion_tokens",
        "positive integer",
    ),
    ("stop not strings", chat(user("Hi"), stop=[1, 2]), "body.stop", "array of strings"),
    (
        "custom tool",
        chat(user("Hi"), tools=[{"type": "custom", "custom": {"name": "grammar"}}]),
        "body.tools[0].type",
        "'custom'",
    ),
    (
        "function tool without name",
        chat(user("Hi"), tools=[{"type": "function", "function": {}}]),
        "body.tools[0].function.name",
        "name",
    ),
    (
        "tools and functions",
        chat(user("Hi"), tools=[TIME_TOOL], functions=[{"name": "get_time"}]),
        "body.functions",
        "not both",
    ),
    (
        "allowed_tools tool_choice",
        chat(
            user("Hi"),
            tools=[TIME_TOOL],
            tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        ),
        "body.tool_choice",
        "allowed_tools",
    ),
    ("required without tools", chat(user("Hi"), tool_choice="required"), "body.tool_choice", "no 'tools'"),
    (
        "tool_choice and function_call",
        chat(user("Hi"), tools=[TIME_TOOL], tool_choice="auto", function_call="auto"),
        "body.function_call",
        "not both",
    ),
    (
        "response_format json_object",
        chat(user("Reply in JSON"), response_format={"type": "json_object"}),
        "body.response_format.type",
        "json_schema",
    ),
    (
        "response_format json_schema without a schema",
        chat(user("Hi"), response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
        "body.response_format.json_schema.schema",
        "schema",
    ),
    ("user not a string", chat(user("Hi"), user=123), "body.user", "string"),
]


@pytest.mark.parametrize(
    ("body", "param", "fragment"), [case[1:] for case in UNTRANSLATABLE], ids=[c[0] for c in UNTRANSLATABLE]
)
def test_untranslatable_request(body: Any, param: str, fragment: str) -> None:
    with pytest.raises(UntranslatableRequest) as caught:
        to_anthropic_params(body, default_max_tokens=DEFAULT_MAX_TOKENS)
    assert caught.value.param == param
    assert fragment in caught.value.message
    assert str(caught.value) == caught.value.message


def test_untranslatable_request_error_body_is_an_openai_envelope() -> None:
    with pytest.raises(UntranslatableRequest) as caught:
        to_anthropic_params(chat(user("Hi"), n=2), default_max_tokens=DEFAULT_MAX_TOKENS)
    body = caught.value.error_body()
    assert body == {
        "error": {
            "message": caught.value.message,
            "type": "invalid_request_error",
            "param": "body.n",
            "code": "untranslatable_request",
        }
    }
    line = ResultLine.answered("req-1", 400, body)
    assert not line.ok
    assert line.error_code == "untranslatable_request"


# A request using most features, the seed of the garbage fuzzing below.
RICH_REQUEST = chat(
    {"role": "system", "content": "Be brief."},
    user([text("Look:"), {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]),
    assistant("Checking.", tool_calls=[tool_call("call_1", "get_weather", '{"city": "Paris"}')]),
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    user([{"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF_B64}"}}]),
    tools=[WEATHER_TOOL],
    tool_choice={"type": "function", "function": {"name": "get_weather"}},
    parallel_tool_calls=False,
    stop=["END"],
    temperature=0.5,
    max_completion_tokens=300,
    response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    user="u1",
)

GARBAGE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, float("nan"), 10**30, "", "x", "data:", "data:,", "data:image/png;base64",
    [], [None], [[]], {}, {"type": None}, {"type": []}, {"type": {}}, {"role": []}, {"function": "x"},
    {"type": "function", "function": []}, [{"type": "text", "text": None}],
]  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copied


def _garbage_variants(seed: Any, count: int, rng: random.Random) -> list[Any]:
    paths = _paths(seed)
    return [_replaced(seed, rng.choice(paths), rng.choice(GARBAGE_VALUES)) for _ in range(count)]


def test_rich_request_translates_and_fits_the_sdk_types() -> None:
    params = to_anthropic_params(RICH_REQUEST, default_max_tokens=DEFAULT_MAX_TOKENS)
    assert params["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert_valid_anthropic_params(params)


def test_garbage_requests_raise_only_untranslatable_request() -> None:
    """Every node of a rich request replaced by garbage, one at a time: either it still translates to
    params that fit the SDK types, or it raises `UntranslatableRequest`, never anything else."""
    rng = random.Random(20260821)
    for body in _garbage_variants(RICH_REQUEST, 1500, rng):
        try:
            params = to_anthropic_params(body, default_max_tokens=DEFAULT_MAX_TOKENS)
        except UntranslatableRequest as exc:
            assert exc.param is not None and exc.param.startswith("body")
            continue
        assert isinstance(params["max_tokens"], int) and params["messages"]


# --- results: succeeded -----------------------------------------------------------------------------------


def anthropic_message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: Any
) -> dict[str, Any]:
    message = {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7, **usage},
    }
    Message.model_validate(message)  # keep the fixtures honest: the SDK must accept them
    return message


def openai_completion(
    content: str | None,
    finish_reason: str,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    prompt: int = 12,
    completion: int = 7,
    cached: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-msg_01ABC",
        "object": "chat.completion",
        "created": CREATED,
        "model": "claude-sonnet-4-5-20250929",
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }


TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_01",
    "name": "get_weather",
    "input": {"city": "Paris", "days": 2},
}
TOOL_CALL = {
    "id": "toolu_01",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":2}'},
}
THINKING = {"type": "thinking", "thinking": "Let me think.", "signature": "sig"}
REDACTED = {"type": "redacted_thinking", "data": "opaque"}

TRANSLATED_MESSAGES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "plain text",
        anthropic_message([{"type": "text", "text": "Hello!"}]),
        openai_completion("Hello!", "stop"),
    ),
    (
        "text blocks joined, citations dropped",
        anthropic_message(
            [
                {"type": "text", "text": "Paris is the capital"},
                {
                    "type": "text",
                    "text": " of France.",
                    "citations": [
                        {
                            "type": "char_location",
                            "cited_text": "Paris",
                            "document_index": 0,
                            "document_title": None,
                            "start_char_index": 0,
                            "end_char_index": 5,
                            "file_id": None,
                        }
                    ],
                },
            ]
        ),
        openai_completion("Paris is the capital of France.", "stop"),
    ),
    (
        "tool_use only: content null",
        anthropic_message([TOOL_USE], "tool_use"),
        openai_completion(None, "tool_calls", tool_calls=[TOOL_CALL]),
    ),
    (
        "text and tool_use",
        anthropic_message([{"type": "text", "text": "Checking."}, TOOL_USE], "tool_use"),
        openai_completion("Checking.", "tool_calls", tool_calls=[TOOL_CALL]),
    ),
    (
        "refusal → content_filter",
        anthropic_message([{"type": "text", "text": "I can't"}], "refusal"),
        openai_completion("I can't", "content_filter"),
    ),
    (
        "max_tokens truncation → length",
        anthropic_message([{"type": "text", "text": "Once upon a"}], "max_tokens"),
        openai_completion("Once upon a", "length"),
    ),
    (
        "context window exceeded → length",
        anthropic_message([{"type": "text", "text": "…"}], "model_context_window_exceeded"),
        openai_completion("…", "length"),
    ),
    (
        "stop_sequence → stop",
        anthropic_message([{"type": "text", "text": "1 2 3"}], "stop_sequence"),
        openai_completion("1 2 3", "stop"),
    ),
    (
        "pause_turn → stop",
        anthropic_message([{"type": "text", "text": "Searching"}], "pause_turn"),
        openai_completion("Searching", "stop"),
    ),
    (
        "no content blocks at all",
        anthropic_message([], "end_turn"),
        openai_completion(None, "stop"),
    ),
    (
        "cache usage: prompt includes cache writes and reads",
        anthropic_message(
            [{"type": "text", "text": "Hi"}],
            input_tokens=10,
            output_tokens=50,
            cache_creation_input_tokens=100,
            cache_read_input_tokens=1000,
            service_tier="batch",
        ),
        openai_completion("Hi", "stop", prompt=1110, completion=50, cached=1000, cache_write=100),
    ),
    (
        "null cache fields read as zero",
        anthropic_message(
            [{"type": "text", "text": "Hi"}], cache_creation_input_tokens=None, cache_read_input_tokens=None
        ),
        openai_completion("Hi", "stop"),
    ),
    (
        "thinking blocks dropped, thinking tokens are reasoning tokens",
        anthropic_message(
            [THINKING, REDACTED, {"type": "text", "text": "42"}],
            output_tokens=300,
            output_tokens_details={"thinking_tokens": 250},
        ),
        openai_completion("42", "stop", completion=300, reasoning=250),
    ),
]


@pytest.mark.parametrize(
    ("message", "want"), [case[1:] for case in TRANSLATED_MESSAGES], ids=[c[0] for c in TRANSLATED_MESSAGES]
)
def test_message_translation(message: dict[str, Any], want: dict[str, Any]) -> None:
    body = to_openai_completion(message, created=CREATED)
    assert body == want
    assert_valid_chat_completion(body)


def test_unknown_stop_reason_reads_as_stop() -> None:
    message = {**anthropic_message([{"type": "text", "text": "x"}]), "stop_reason": "some_future_reason"}
    assert to_openai_completion(message, created=CREATED)["choices"][0]["finish_reason"] == "stop"


def test_succeeded_result_line() -> None:
    message = anthropic_message(
        [{"type": "text", "text": "Hi"}], input_tokens=10, output_tokens=5, cache_read_input_tokens=90
    )
    MessageBatchIndividualResponse.model_validate(
        {"custom_id": "req-1", "result": {"type": "succeeded", "message": message}}
    )
    line = result_line_from_anthropic(
        "req.1 (client id)", {"type": "succeeded", "message": message}, created=CREATED
    )
    assert line.ok and line.status_code == 200 and line.error is None
    assert line.custom_id == "req.1 (client id)"
    assert line.request_id == "msg_01ABC"
    assert line.model == "claude-sonnet-4-5-20250929"
    assert line.body == to_openai_completion(message, created=CREATED)
    assert (line.usage.input_tokens, line.usage.output_tokens, line.usage.total_tokens) == (100, 5, 105)
    assert line.usage.cached_tokens == 90
    assert_valid_chat_completion(line.body)
    assert line.output_line("batch_req_1")["response"]["status_code"] == 200


# --- results: errored, canceled, expired ---------------------------------------------------------------

# The error types the SDK's `ErrorObject` union accepts in a result (it lacks request_too_large and the
# conflict types, which the API can still send).
SDK_RESULT_ERROR_TYPES = {
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "rate_limit_error", "timeout_error", "api_error", "overloaded_error",
}  # fmt: skip
ERROR_MAPPING = [
    ("invalid_request_error", 400, "invalid_request_error"),
    ("authentication_error", 401, "invalid_request_error"),
    ("billing_error", 402, "invalid_request_error"),
    ("permission_error", 403, "invalid_request_error"),
    ("not_found_error", 404, "invalid_request_error"),
    ("conflict_error", 409, "invalid_request_error"),
    ("memory_precondition_failed_error", 412, "invalid_request_error"),
    ("request_too_large", 413, "invalid_request_error"),
    ("rate_limit_error", 429, "rate_limit_exceeded"),
    ("api_error", 500, "server_error"),
    ("timeout_error", 504, "server_error"),
    ("overloaded_error", 529, "server_error"),
    ("some_future_error", 500, "server_error"),
]


@pytest.mark.parametrize(("anthropic_type", "status", "openai_type"), ERROR_MAPPING)
def test_errored_result_line(anthropic_type: str, status: int, openai_type: str) -> None:
    result = {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": anthropic_type, "message": "max_tokens: 100000 > 64000"},
            "request_id": "req_011CS",
        },
    }
    if anthropic_type in SDK_RESULT_ERROR_TYPES:
        MessageBatchIndividualResponse.model_validate({"custom_id": "r", "result": result})
    line = result_line_from_anthropic("req-5", result, created=CREATED)
    assert line.status_code == status and not line.ok and line.error is None
    assert line.body == {
        "error": {
            "message": "max_tokens: 100000 > 64000",
            "type": openai_type,
            "param": None,
            "code": anthropic_type,
        }
    }
    assert line.request_id == "req_011CS"
    assert line.error_code == anthropic_type
    assert line.usage.total_tokens == 0


def test_errored_result_without_request_id_and_single_nested() -> None:
    double = {
        "type": "errored",
        "error": {"type": "error", "error": {"type": "api_error", "message": "boom"}},
    }
    single = {"type": "errored", "error": {"type": "api_error", "message": "boom"}}
    for result in (double, single):
        line = result_line_from_anthropic("r", result, created=CREATED)
        assert (line.status_code, line.request_id, line.error_code) == (500, None, "api_error")


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("canceled", "batch_cancelled", "This request was cancelled before it could be executed."),
        (
            "expired",
            "batch_expired",
            "This request could not be executed before the completion window expired.",
        ),
    ],
)
def test_unexecuted_result_line(kind: str, code: str, message: str) -> None:
    MessageBatchIndividualResponse.model_validate({"custom_id": "r", "result": {"type": kind}})
    line = result_line_from_anthropic("req-7", {"type": kind}, created=CREATED)
    assert line.status_code is None and line.body is None
    assert line.error_code == code
    assert line.output_line("batch_req_7") == {
        "id": "batch_req_7",
        "custom_id": "req-7",
        "response": None,
        "error": {"code": code, "message": message},
    }


# --- results: garbage -----------------------------------------------------------------------------------

GOOD_MESSAGE = anthropic_message(
    [THINKING, {"type": "text", "text": "Hi"}, TOOL_USE],
    "tool_use",
    cache_read_input_tokens=3,
    output_tokens_details={"thinking_tokens": 2},
)
GOOD_ERRORED = {
    "type": "errored",
    "error": {"type": "error", "error": {"type": "api_error", "message": "x"}, "request_id": "req_1"},
}

GARBAGE_RESULTS: list[tuple[str, Any]] = [
    ("None", None),
    ("a string", "succeeded"),
    ("a list", [{"type": "succeeded"}]),
    ("no type", {}),
    ("unknown type", {"type": "pending"}),
    ("unhashable type", {"type": ["succeeded"]}),
    ("succeeded without message", {"type": "succeeded"}),
    ("message not an object", {"type": "succeeded", "message": "hi"}),
    ("message without id", {"type": "succeeded", "message": {**GOOD_MESSAGE, "id": None}}),
    (
        "message without model",
        {"type": "succeeded", "message": {k: v for k, v in GOOD_MESSAGE.items() if k != "model"}},
    ),
    ("content not a list", {"type": "succeeded", "message": {**GOOD_MESSAGE, "content": "Hi"}}),
    (
        "content missing",
        {"type": "succeeded", "message": {k: v for k, v in GOOD_MESSAGE.items() if k != "content"}},
    ),
    ("block not an object", {"type": "succeeded", "message": {**GOOD_MESSAGE, "content": ["Hi"]}}),
    ("block without type", {"type": "succeeded", "message": {**GOOD_MESSAGE, "content": [{"text": "Hi"}]}}),
    (
        "text not a string",
        {"type": "succeeded", "message": {**GOOD_MESSAGE, "content": [{"type": "text", "text": 5}]}},
    ),
    (
        "tool_use input not an object",
        {"type": "succeeded", "message": {**GOOD_MESSAGE, "content": [{**TOOL_USE, "input": "{}"}]}},
    ),
    (
        "tool_use input not JSON-encodable",
        {"type": "succeeded", "message": {**GOOD_MESSAGE, "content": [{**TOOL_USE, "input": {1: {2, 3}}}]}},
    ),
    ("null stop_reason", {"type": "succeeded", "message": {**GOOD_MESSAGE, "stop_reason": None}}),
    ("unhashable stop_reason", {"type": "succeeded", "message": {**GOOD_MESSAGE, "stop_reason": {}}}),
    (
        "usage missing",
        {"type": "succeeded", "message": {k: v for k, v in GOOD_MESSAGE.items() if k != "usage"}},
    ),
    ("usage not an object", {"type": "succeeded", "message": {**GOOD_MESSAGE, "usage": 5}}),
    (
        "input_tokens missing",
        {"type": "succeeded", "message": {**GOOD_MESSAGE, "usage": {"output_tokens": 1}}},
    ),
    (
        "usage count a float",
        {
            "type": "succeeded",
            "message": {**GOOD_MESSAGE, "usage": {"input_tokens": 1.5, "output_tokens": 1}},
        },
    ),
    (
        "usage count a bool",
        {
            "type": "succeeded",
            "message": {**GOOD_MESSAGE, "usage": {"input_tokens": True, "output_tokens": 1}},
        },
    ),
    (
        "negative usage",
        {"type": "succeeded", "message": {**GOOD_MESSAGE, "usage": {"input_tokens": -1, "output_tokens": 1}}},
    ),
    (
        "cache count a string",
        {
            "type": "succeeded",
            "message": {
                **GOOD_MESSAGE,
                "usage": {"input_tokens": 1, "output_tokens": 1, "cache_read_input_tokens": "3"},
            },
        },
    ),
    (
        "output_tokens_details not an object",
        {
            "type": "succeeded",
            "message": {
                **GOOD_MESSAGE,
                "usage": {"input_tokens": 1, "output_tokens": 1, "output_tokens_details": 4},
            },
        },
    ),
    ("errored without error", {"type": "errored"}),
    ("errored error not an object", {"type": "errored", "error": "boom"}),
    (
        "errored inner without message",
        {"type": "errored", "error": {"type": "error", "error": {"type": "api_error"}}},
    ),
    (
        "errored inner type not a string",
        {"type": "errored", "error": {"type": "error", "error": {"type": 5, "message": "x"}}},
    ),
]


@pytest.mark.parametrize(
    "result", [case[1] for case in GARBAGE_RESULTS], ids=[case[0] for case in GARBAGE_RESULTS]
)
def test_garbage_result_is_unreadable(result: Any) -> None:
    with pytest.raises(UnreadableResult) as caught:
        result_line_from_anthropic("req-9", result, created=CREATED)
    assert caught.value.custom_id == "req-9"
    assert caught.value.reason


def test_garbage_message_is_unreadable_without_custom_id() -> None:
    with pytest.raises(UnreadableResult) as caught:
        to_openai_completion(["not", "a", "message"], created=CREATED)  # type: ignore[arg-type]
    assert caught.value.custom_id is None


def test_mutated_results_raise_only_unreadable_result() -> None:
    """Every node of valid results replaced by garbage, one at a time: a `ResultLine` or `UnreadableResult`,
    never another exception."""
    rng = random.Random(4242)
    seeds = [{"type": "succeeded", "message": GOOD_MESSAGE}, GOOD_ERRORED, {"type": "canceled"}]
    for seed in seeds:
        for result in _garbage_variants(seed, 700, rng):
            try:
                line = result_line_from_anthropic("req-x", result, created=CREATED)
            except UnreadableResult as exc:
                assert exc.custom_id == "req-x"
                continue
            assert isinstance(line, ResultLine) and line.custom_id == "req-x"
            if line.ok:
                assert_valid_chat_completion(line.body)


# --- custom ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "custom_id", ["request-1", "a", "A_b-9", "x" * 64, "batchway-line", "batchwayline-3"]
)
def test_valid_custom_ids_are_sent_unchanged(custom_id: str) -> None:
    assert is_anthropic_custom_id(custom_id) and not needs_remap(custom_id)
    assert anthropic_custom_id(custom_id, 17) == custom_id
    assert remapped_line_number(custom_id) is None
    assert client_custom_id(custom_id, {}) == custom_id


@pytest.mark.parametrize(
    "custom_id",
    [
        "",
        "task.1",
        "user:42/req 7",
        "x" * 65,
        "café",
        "line\n2",
        f"{REMAP_PREFIX}3",  # looks like a remapped id: remapped too
        f"{REMAP_PREFIX.upper()}3",
        f"{REMAP_PREFIX}abc",
    ],
)
def test_other_custom_ids_are_remapped_by_line(custom_id: str) -> None:
    assert needs_remap(custom_id)
    sent = anthropic_custom_id(custom_id, 17)
    assert sent == f"{REMAP_PREFIX}17" == remapped_custom_id(17)
    assert is_anthropic_custom_id(sent)
    assert remapped_line_number(sent) == 17
    assert client_custom_id(sent, {17: custom_id}) == custom_id


def test_remapped_ids_never_collide_with_client_ids() -> None:
    """Client ids chosen to look like remapped ones, plus random ones around the prefix: the ids sent
    are unique, all match Anthropic's pattern, and each maps back to its client id."""
    adversarial = [
        f"{REMAP_PREFIX}1", f"{REMAP_PREFIX}2", f"{REMAP_PREFIX.upper()}4", f"{REMAP_PREFIX}02", "a.b", "a b",
        "x" * 65, "ok_1", "3", "batchway-line-", "Batchway-Line-7", "r1",
    ]  # fmt: skip
    rng = random.Random(7)
    alphabet = ["batchway-line-", "BATCHWAY-line-", "1", "2", "0", ".", "_", "-", "a", " "]
    randoms = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(3000)}
    client_ids = list(dict.fromkeys(adversarial + sorted(randoms)))
    rng.shuffle(client_ids)

    sent = [anthropic_custom_id(custom_id, line) for line, custom_id in enumerate(client_ids, start=1)]
    assert len(set(sent)) == len(sent)
    # Even an upstream comparing ids case-insensitively sees no remapped id equal to a kept one.
    kept = {s.lower() for s, custom_id in zip(sent, client_ids, strict=True) if not needs_remap(custom_id)}
    remapped = {s.lower() for s, custom_id in zip(sent, client_ids, strict=True) if needs_remap(custom_id)}
    assert kept and remapped and not kept & remapped
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", s) for s in sent)

    remapped_by_line = {
        line: custom_id for line, custom_id in enumerate(client_ids, start=1) if needs_remap(custom_id)
    }
    assert [client_custom_id(s, remapped_by_line) for s in sent] == client_ids


def test_unknown_remapped_ids_map_to_nothing() -> None:
    assert client_custom_id(f"{REMAP_PREFIX}99", {1: "a.b"}) is None
    assert client_custom_id(f"{REMAP_PREFIX}01", {1: "a.b"}) is None
    assert client_custom_id(f"{REMAP_PREFIX.upper()}1", {1: "a.b"}) is None


@pytest.mark.parametrize("line_number", [0, -3, True, 1.0, "1"])
def test_remapped_custom_id_needs_a_positive_line_number(line_number: Any) -> None:
    with pytest.raises(ValueError):
        remapped_custom_id(line_number)
