"""The heuristic rules behind `scoring.heuristic_score`, and the reading of chat shapes they share with
the judge (`judge.py`). The rules and their penalties are documented in `scoring`'s docstring.

Reading is defensive: a response body that is not a chat.completion raises `MalformedResponse` (the
caller turns it into a zero score); anything odd *inside* a well-shaped choice (a tool call without a
name, arguments that are not a string...) is left for the rules to penalize. Nothing here raises
anything else, whatever the input: scoring runs after the batch completed, where an exception would
only fail (and endlessly retry) a background job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MALFORMED_RESPONSE = "malformed_response"
EMPTY_ANSWER = "empty_answer"
REFUSAL = "refusal"
TRUNCATED = "truncated"
INVALID_JSON = "invalid_json"
SCHEMA_MISMATCH = "schema_mismatch"
INVALID_TOOL_ARGUMENTS = "invalid_tool_arguments"
UNKNOWN_TOOL = "unknown_tool"

# The factor each reason multiplies the score by (see `scoring` for why these values).
PENALTIES: dict[str, float] = {
    MALFORMED_RESPONSE: 0.0,
    EMPTY_ANSWER: 0.0,
    REFUSAL: 0.2,
    TRUNCATED: 0.5,
    INVALID_JSON: 0.2,
    SCHEMA_MISMATCH: 0.5,
    INVALID_TOOL_ARGUMENTS: 0.2,
    UNKNOWN_TOOL: 0.2,
}


class MalformedResponse(ValueError):
    """The response body is not a chat.completion (no choices, a choice without a message...)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    kind: str  # "function" (including the legacy `function_call`) or "custom"
    name: Any  # as sent: a str when well formed
    arguments: Any  # as sent: a function call's `arguments`, a custom call's free-form `input`


@dataclass(frozen=True, slots=True)
class Choice:
    text: str
    refusal: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None


# ---------------------------------------------------------------------------------------------------
# Reading


def read_choices(response_body: Any) -> list[Choice]:
    """The choices of a chat.completion body; `MalformedResponse` when it is not one."""
    if not isinstance(response_body, dict):
        raise MalformedResponse("the body is not an object")
    kind = response_body.get("object", "chat.completion")
    if kind != "chat.completion":
        raise MalformedResponse("the body is not a chat.completion")
    choices = response_body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse("the body has no choices")
    return [read_choice(choice) for choice in choices]


def read_choice(choice: Any) -> Choice:
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise MalformedResponse("a choice has no message")
    text = content_text(message.get("content"))
    refusal = message.get("refusal")
    if text is None or not (refusal is None or isinstance(refusal, str)):
        raise MalformedResponse("a message's content or refusal is not text")
    finish_reason = choice.get("finish_reason")
    return Choice(
        text=text or audio_transcript(message),
        refusal=refusal if refusal and refusal.strip() else None,
        tool_calls=read_tool_calls(message),
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
    )


def content_text(content: Any) -> str | None:
    """The text of a message's `content`: a string, null (no text) or a list of content parts (which
    requests use, and some compatible servers answer with). None when it is none of those."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = [part.get("text") for part in content if isinstance(part, dict)]
    return "".join(text for text in texts if isinstance(text, str))


def audio_transcript(message: dict[str, Any]) -> str:
    # An audio answer has null content: its transcript is the answer's text.
    audio = message.get("audio")
    transcript = audio.get("transcript") if isinstance(audio, dict) else None
    return transcript if isinstance(transcript, str) else ""


def read_tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    calls = message.get("tool_calls")
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        raise MalformedResponse("a message's tool_calls is not a list")
    legacy = message.get("function_call")
    if legacy is not None:
        calls = [*calls, {"type": "function", "function": legacy}]
    return tuple(read_tool_call(call) for call in calls)


def read_tool_call(call: Any) -> ToolCall:
    if not isinstance(call, dict):
        return ToolCall("function", None, None)
    if call.get("type") == "custom":
        custom = call.get("custom")
        if not isinstance(custom, dict):
            return ToolCall("custom", None, None)
        return ToolCall("custom", custom.get("name"), custom.get("input"))
    function = call.get("function")
    if not isinstance(function, dict):
        return ToolCall("function", None, None)
    return ToolCall("function", function.get("name"), function.get("arguments"))


def declared_tools(request_body: dict[str, Any]) -> dict[str, str]:
    """Tool name → kind ("function" or "custom") of the tools (and legacy `functions`) a request offers."""
    declared: dict[str, str] = {}
    for tool in as_list(request_body.get("tools")):
        kind = tool.get("type", "function") if isinstance(tool, dict) else None
        spec = tool.get(kind) if kind in ("function", "custom") else None
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str):
            declared[name] = kind
    for function in as_list(request_body.get("functions")):
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            declared[name] = "function"
    return declared


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_json(text: str) -> tuple[bool, Any]:
    """(True, value) when `text` is JSON. RecursionError: very deeply nested input is not usable JSON."""
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


# ---------------------------------------------------------------------------------------------------
# Rules


def choice_reasons(request_body: dict[str, Any], choice: Choice) -> list[str]:
    """The reason codes of one choice, in rule order."""
    reasons: list[str] = []
    refused = is_refusal(choice)
    if refused:
        reasons.append(REFUSAL)
    elif is_empty(choice):
        reasons.append(EMPTY_ANSWER)
    if choice.finish_reason == "length":
        reasons.append(TRUNCATED)
    # A refusal's penalty already covers its missing JSON; no text means a tool call or an empty answer.
    if not refused and choice.text.strip():
        reasons.extend(json_reasons(request_body, choice.text))
    reasons.extend(tool_call_reasons(request_body, choice.tool_calls))
    return reasons


def is_empty(choice: Choice) -> bool:
    return not choice.text.strip() and not choice.tool_calls


def is_refusal(choice: Choice) -> bool:
    return (
        choice.finish_reason == "content_filter"
        or choice.refusal is not None
        or opens_with_refusal(choice.text)
    )


# A refusal opening: one of these subjects, then one of these verbs, as a whole word, optionally after
# one apology preface. Spelling variants are normalized first ("cannot", "I am", curly apostrophes).
# Deliberately short: a refusal phrase in the middle of an answer is usually a partial, useful answer.
REFUSAL_SUBJECTS = ("i can't", "i'm unable to", "i'm not able to", "i won't")
REFUSAL_VERBS = ("help", "assist", "comply")
APOLOGY_PREFACES = ("i'm sorry, but ", "i'm sorry, ", "sorry, but ", "sorry, ", "i apologize, but ")
REFUSAL_OPENING = re.compile(
    "(?:{prefaces})?(?:{subjects}) (?:{verbs})\\b(?! but\\b)".format(
        prefaces="|".join(map(re.escape, APOLOGY_PREFACES)),
        subjects="|".join(map(re.escape, REFUSAL_SUBJECTS)),
        verbs="|".join(REFUSAL_VERBS),
    )
)
SPELLING_VARIANTS = (
    ("\u2019", "'"),
    ("cannot", "can't"),
    ("can not", "can't"),
    ("i am ", "i'm "),
    ("will not", "won't"),
)


def opens_with_refusal(text: str) -> bool:
    """Whether the answer opens with a refusal ("I can't help with that.", "Sorry, but I cannot
    assist..."). "I can't help but notice..." is the idiom, not a refusal."""
    opening = " ".join(text[:200].lower().split())
    for variant, canonical in SPELLING_VARIANTS:
        opening = opening.replace(variant, canonical)
    return REFUSAL_OPENING.match(opening) is not None


def json_reasons(request_body: dict[str, Any], text: str) -> list[str]:
    """When the request asked for JSON: `invalid_json` if the text is not JSON (or, for json_object,
    not an object); for json_schema, `schema_mismatch` if the top level is not an object where the
    schema wants one, or lacks one of the schema's top-level `required` keys."""
    response_format = request_body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("json_object", "json_schema"):
        return []
    parsed, value = parse_json(text)
    if not parsed or (kind == "json_object" and not isinstance(value, dict)):
        return [INVALID_JSON]
    if kind == "json_schema" and not matches_schema_top_level(response_format, value):
        return [SCHEMA_MISMATCH]
    return []


def matches_schema_top_level(response_format: dict[str, Any], value: Any) -> bool:
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return True  # no readable schema: nothing to hold the answer to
    required = [key for key in as_list(schema.get("required")) if isinstance(key, str)]
    if schema.get("type") != "object" and not required:
        return True
    return isinstance(value, dict) and all(key in value for key in required)


def tool_call_reasons(request_body: dict[str, Any], calls: Iterable[ToolCall]) -> list[str]:
    """`invalid_tool_arguments` when a function call's arguments are not a JSON object string;
    `unknown_tool` when a call names no tool of that kind offered by the request."""
    declared = declared_tools(request_body)
    reasons: list[str] = []
    for call in calls:
        if call.kind == "function" and not is_json_object_string(call.arguments):
            reasons.append(INVALID_TOOL_ARGUMENTS)
        if not isinstance(call.name, str) or declared.get(call.name) != call.kind:
            reasons.append(UNKNOWN_TOOL)
    return list(dict.fromkeys(reasons))


def is_json_object_string(arguments: Any) -> bool:
    if not isinstance(arguments, str):
        return False
    parsed, value = parse_json(arguments)
    return parsed and isinstance(value, dict)
