"""OpenAI chat `messages` → Anthropic `system` and `messages` (contract §4.1; the choices made are listed
in `translate_request`'s docstring)."""

from __future__ import annotations

from typing import Any

import orjson

from batchway.upstreams.anthropic.untranslatable import UntranslatableRequest, param_path

SYSTEM_ROLES = frozenset({"system", "developer"})
TOOL_RESULT_ROLES = frozenset({"tool", "function"})

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MEDIA_TYPE_ALIASES = {"image/jpg": "image/jpeg"}  # a common misspelling OpenAI accepts
PDF_MEDIA_TYPE = "application/pdf"
PDF_BASE64_PREFIX = "JVBER"  # the base64 of "%PDF", the first bytes of every PDF


def translate_messages(messages: Any) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(`system`, `messages`) for Anthropic."""
    where = param_path("messages")
    if not isinstance(messages, list) or not messages:
        raise UntranslatableRequest("'messages' must be a non-empty array.", where)
    system_contents: list[tuple[Any, str]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        at = f"{where}[{index}]"
        if not isinstance(message, dict):
            raise UntranslatableRequest("Each message must be an object.", at)
        role = message.get("role")
        role = role if isinstance(role, str) else f"<{type(role).__name__}>"
        if role in SYSTEM_ROLES:
            system_contents.append((message.get("content"), f"{at}.content"))
        elif role == "user":
            _append_turn(turns, "user", _user_blocks(message.get("content"), f"{at}.content"))
        elif role == "assistant":
            _append_turn(turns, "assistant", _assistant_blocks(message, at))
        elif role in TOOL_RESULT_ROLES:
            _append_turn(turns, "user", [_tool_result_block(message, at)])
        else:
            raise UntranslatableRequest(
                f"Unknown message role '{role}'; expected system, developer, user, assistant or tool.",
                f"{at}.role",
            )
    if not turns:
        raise UntranslatableRequest(
            "Anthropic needs at least one user or assistant message besides system/developer messages.", where
        )
    return _system(system_contents), [_finished_turn(turn) for turn in turns]


def _system(contents: list[tuple[Any, str]]) -> str | list[dict[str, Any]] | None:
    blocks = [block for content, at in contents for block in _text_blocks(content, at)]
    if not blocks:
        return None
    if len(contents) == 1 and isinstance(contents[0][0], str):
        return blocks[0]["text"]
    return blocks


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add blocks as a turn, merged into the previous turn when it has the same role."""
    if not blocks:
        return  # an assistant message with neither text nor tool calls says nothing
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _finished_turn(turn: dict[str, Any]) -> dict[str, Any]:
    blocks = turn["content"]
    if turn["role"] == "user":
        # Anthropic wants a user turn's tool_result blocks before anything else in it.
        blocks = sorted(blocks, key=lambda block: block["type"] != "tool_result")
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            return {"role": "user", "content": blocks[0]["text"]}
    return {"role": turn["role"], "content": blocks}


def _text_block(text: str) -> list[dict[str, Any]]:
    # Anthropic rejects text blocks that are empty or only whitespace.
    return [{"type": "text", "text": text}] if text.strip() else []


def _part_type(part: Any, at: str) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str):
        raise UntranslatableRequest("Each content part must be an object with a string 'type'.", f"{at}.type")
    return kind


def _text_blocks(content: Any, at: str, part_types: tuple[str, ...] = ("text",)) -> list[dict[str, Any]]:
    """Text blocks of a content that may only hold text (system, developer, assistant, tool)."""
    if content is None:
        return []
    if isinstance(content, str):
        return _text_block(content)
    if not isinstance(content, list):
        raise UntranslatableRequest("'content' must be a string or an array of content parts.", at)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = _part_type(part, f"{at}[{i}]")
        if kind not in part_types:
            raise UntranslatableRequest(
                f"Content part type '{kind}' is not allowed here; only {' or '.join(part_types)} parts are.",
                f"{at}[{i}].type",
            )
        blocks.extend(_text_part_block(part, kind, f"{at}[{i}]"))
    return blocks


def _text_part_block(part: dict[str, Any], kind: str, at: str) -> list[dict[str, Any]]:
    # A text part holds its text under "text", a refusal part under "refusal".
    text = part.get(kind)
    if not isinstance(text, str):
        raise UntranslatableRequest(f"A '{kind}' part needs a string '{kind}'.", f"{at}.{kind}")
    return _text_block(text)


def _user_blocks(content: Any, at: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        blocks = _text_block(content)
    elif isinstance(content, list):
        blocks = [block for i, part in enumerate(content) for block in _user_part(part, f"{at}[{i}]")]
    else:
        raise UntranslatableRequest("A user message's 'content' must be a string or an array of parts.", at)
    if not blocks:
        raise UntranslatableRequest("Anthropic does not accept a user message with empty content.", at)
    return blocks


def _user_part(part: Any, at: str) -> list[dict[str, Any]]:
    kind = _part_type(part, at)
    if kind == "text":
        return _text_part_block(part, "text", at)
    if kind == "image_url":
        return [{"type": "image", "source": _image_source(part.get("image_url"), f"{at}.image_url.url")}]
    if kind == "file":
        return [_pdf_document(part.get("file"), f"{at}.file")]
    if kind == "input_audio":
        raise UntranslatableRequest("Anthropic models do not accept audio input.", f"{at}.type")
    raise UntranslatableRequest(
        f"Content part type '{kind}' cannot be translated for Anthropic; "
        "use text, image_url or file (PDF) parts.",
        f"{at}.type",
    )


def _base64_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<media type>[;params];base64,<data>` URL; None otherwise."""
    header, comma, data = url.partition(",")
    attributes = header[len("data:") :].split(";")
    if not comma or attributes[-1].strip().lower() != "base64":
        return None
    return attributes[0].strip().lower(), data


def _image_source(image_url: Any, at: str) -> dict[str, Any]:
    # `image_url` is {url, detail}; a bare URL string is accepted too. `detail` has no equivalent.
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise UntranslatableRequest("An image_url part needs an 'image_url.url'.", at)
    scheme = url[:8].lower()
    if scheme.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    if not scheme.startswith("data:"):
        raise UntranslatableRequest("An image URL must be an http(s) URL or a base64 data URL.", at)
    parsed = _base64_data_url(url)
    if parsed is None:
        raise UntranslatableRequest(
            "An image data URL must be base64-encoded: data:<media type>;base64,<data>.", at
        )
    media_type, data = parsed
    media_type = MEDIA_TYPE_ALIASES.get(media_type, media_type)
    if media_type not in IMAGE_MEDIA_TYPES:
        raise UntranslatableRequest(
            f"Image media type '{media_type}' is not supported by Anthropic; "
            "use image/jpeg, image/png, image/gif or image/webp.",
            at,
        )
    return {"type": "base64", "media_type": media_type, "data": data}


def _pdf_document(file: Any, at: str) -> dict[str, Any]:
    if not isinstance(file, dict):
        raise UntranslatableRequest("A file part needs a 'file' object.", at)
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        if file.get("file_id") is not None:
            raise UntranslatableRequest(
                "Files referenced by 'file_id' cannot be sent to Anthropic; "
                "inline the PDF in 'file_data' as a base64 data URL.",
                f"{at}.file_id",
            )
        raise UntranslatableRequest("A file part needs 'file_data'.", f"{at}.file_data")
    # `file_data` is normally a data URL; bare base64 is accepted when it decodes to a PDF.
    parsed = _base64_data_url(data) if data[:5].lower() == "data:" else (PDF_MEDIA_TYPE, data)
    if parsed is None or parsed[0] != PDF_MEDIA_TYPE or not parsed[1].startswith(PDF_BASE64_PREFIX):
        raise UntranslatableRequest(
            "Only PDF files can be sent to Anthropic: 'file_data' must be a base64 PDF "
            "(data:application/pdf;base64,<data>).",
            f"{at}.file_data",
        )
    return {"type": "document", "source": {"type": "base64", "media_type": PDF_MEDIA_TYPE, "data": parsed[1]}}


def _assistant_blocks(message: dict[str, Any], at: str) -> list[dict[str, Any]]:
    if message.get("function_call") is not None:
        raise UntranslatableRequest(
            "An assistant 'function_call' (deprecated) has no id for its result to refer to; "
            "use 'tool_calls' with ids instead.",
            f"{at}.function_call",
        )
    if message.get("audio") is not None:
        raise UntranslatableRequest(
            "A previous audio response cannot be sent to Anthropic; replace it with its transcript.",
            f"{at}.audio",
        )
    blocks = _text_blocks(message.get("content"), f"{at}.content", part_types=("text", "refusal"))
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return blocks
    if not isinstance(tool_calls, list):
        raise UntranslatableRequest("'tool_calls' must be an array.", f"{at}.tool_calls")
    return blocks + [_tool_use_block(call, f"{at}.tool_calls[{i}]") for i, call in enumerate(tool_calls)]


def _tool_use_block(call: Any, at: str) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise UntranslatableRequest("Each tool call must be an object.", at)
    if call.get("type", "function") != "function":
        raise UntranslatableRequest(
            f"Tool calls of type '{call.get('type')}' cannot be translated; only function tool calls can.",
            f"{at}.type",
        )
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise UntranslatableRequest("A tool call needs a string 'id'.", f"{at}.id")
    function = call.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise UntranslatableRequest("A tool call needs a 'function.name'.", f"{at}.function.name")
    arguments = _tool_arguments(function.get("arguments"), f"{at}.function.arguments")
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def _tool_arguments(arguments: Any, at: str) -> dict[str, Any]:
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}  # a call without arguments
    if not isinstance(arguments, str):
        raise UntranslatableRequest("Tool call 'arguments' must be a JSON string.", at)
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise UntranslatableRequest(f"Tool call 'arguments' is not valid JSON ({exc}).", at) from None
    if not isinstance(value, dict):
        raise UntranslatableRequest("Tool call 'arguments' must be a JSON object.", at)
    return value


def _tool_result_block(message: dict[str, Any], at: str) -> dict[str, Any]:
    tool_use_id = message.get("tool_call_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise UntranslatableRequest(
            f"A '{message.get('role')}' message needs the 'tool_call_id' of the tool call it answers.",
            f"{at}.tool_call_id",
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
    content = message.get("content")
    if texts := _text_blocks(content, f"{at}.content"):
        block["content"] = content if isinstance(content, str) else texts
    return block
