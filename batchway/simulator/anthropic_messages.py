"""What one request of an Anthropic Message Batch answers (run in a worker thread at creation).

A request succeeds with a deterministic Message: one text block "echo: <last user text>",
`stop_reason: end_turn`, usage counted in words. Trigger phrases anywhere in its `params` change that:
- `SIMULATE_ERROR_<4xx|5xx>`: an `errored` result with the error type for that status.
- `SIMULATE_REFUSAL`: `stop_reason: refusal` (with `stop_details`).
- `SIMULATE_MAX_TOKENS`: `stop_reason: max_tokens`, the text cut to `max_tokens` words.
- `SIMULATE_TOOL_USE` (with `tools`): a `tool_use` block calling the first tool, whose input holds
  a placeholder per property of its `input_schema`; `stop_reason: tool_use`.
- `SIMULATE_CACHE`: `cache_creation_input_tokens` = prompt words, `cache_read_input_tokens` = twice that.
- `SIMULATE_THINKING`: a `thinking` block before the text, counted in
  `usage.output_tokens_details.thinking_tokens` (and in `output_tokens`, which includes it).
The stop reason is the first of refusal, max_tokens, tool_use that applies. Malformed messages
(an unknown role or content block type) become `errored` results, as Anthropic reports them per
request rather than at create time.
"""

import base64
import hashlib
from typing import Any

from batchway.simulator.anthropic_errors import error_envelope
from batchway.simulator.simulation import det_hex, find_error_trigger, iter_strings, words

# Content block types a request may send (Anthropic accepts more with betas; these cover the GA API).
INPUT_BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "container_upload",
    }
)
_TRIGGERS = ("REFUSAL", "MAX_TOKENS", "TOOL_USE", "CACHE", "THINKING")  # each as SIMULATE_<name>


class RequestProblem(Exception):
    """A request Anthropic would reject when it runs it: becomes an `errored` result."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def simulate_request(custom_id: str, params: dict[str, Any], seed: str) -> tuple[dict[str, Any], bool]:
    """The results-file line for one request, and whether it succeeded. Never raises."""
    try:
        status = find_error_trigger(params)
        if status is not None:
            raise RequestProblem(status, f"Simulated error: SIMULATE_ERROR_{status} was found in the params.")
        message = _message(params, seed)
    except RequestProblem as problem:
        error = error_envelope(problem.status, problem.message, "req_" + det_hex(seed, "request", length=24))
        return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}, False
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}, True


def _message(params: dict[str, Any], seed: str) -> dict[str, Any]:
    prompt_words, last_user_text = _read_prompt(params)
    all_text = "\n".join(iter_strings(params))
    triggers = {name for name in _TRIGGERS if f"SIMULATE_{name}" in all_text}
    content: list[dict[str, Any]] = []
    output_words = 0
    thinking_words = 0
    if "THINKING" in triggers:
        thinking = f"The user wrote: {last_user_text}"
        signature = base64.b64encode(hashlib.sha256(f"{seed}:thinking".encode()).digest()).decode()
        content.append({"type": "thinking", "thinking": thinking, "signature": signature})
        thinking_words = words(thinking)
    text = f"echo: {last_user_text}"
    if "MAX_TOKENS" in triggers:
        text = " ".join(text.split()[: params["max_tokens"]])
    content.append({"type": "text", "text": text, "citations": None})
    output_words += words(text)
    tool = _first_tool(params) if "TOOL_USE" in triggers else None
    if tool is not None:
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_" + det_hex(seed, "toolu", length=24),
                "name": tool["name"],
                "input": _tool_input(tool),
            }
        )
        output_words += words(tool["name"])
    if "REFUSAL" in triggers:
        stop_reason = "refusal"
    elif "MAX_TOKENS" in triggers:
        stop_reason = "max_tokens"
    elif tool is not None:
        stop_reason = "tool_use"
    else:
        stop_reason = "end_turn"
    cache_write, cache_read = (prompt_words, 2 * prompt_words) if "CACHE" in triggers else (0, 0)
    usage: dict[str, Any] = {
        "input_tokens": prompt_words,
        "output_tokens": output_words + thinking_words,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
        "service_tier": "batch",
    }
    if thinking_words:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_words}
    message: dict[str, Any] = {
        "id": "msg_" + det_hex(seed, "msg", length=24),
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if stop_reason == "refusal":
        message["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
    return message


def _read_prompt(params: dict[str, Any]) -> tuple[int, str]:
    """(words in system + messages, text of the last user message); raises RequestProblem for
    messages Anthropic would reject."""
    total = words(_blocks_text(params.get("system"), "system"))
    last_user_text = ""
    for index, message in enumerate(params["messages"]):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise RequestProblem(400, f"{where}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise RequestProblem(400, f"{where}.role: Input should be 'user' or 'assistant'")
        text = _blocks_text(message.get("content"), f"{where}.content")
        total += words(text)
        if message["role"] == "user":
            last_user_text = text
    return total, last_user_text


def _blocks_text(content: Any, where: str) -> str:
    """Text of a string or of a list of content blocks (text blocks and tool results' text)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise RequestProblem(400, f"{where}: Input should be a valid string or list of content blocks")
    texts = []
    for index, block in enumerate(content):
        block_type = block.get("type") if isinstance(block, dict) else None
        if block_type not in INPUT_BLOCK_TYPES:
            raise RequestProblem(
                400,
                f"{where}.{index}.type: Input tag {block_type!r} found using 'type' does not match any of "
                f"the expected tags: {', '.join(sorted(INPUT_BLOCK_TYPES))}",
            )
        if block_type == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block_type == "tool_result":
            texts.append(_blocks_text(block.get("content"), f"{where}.{index}.content"))
    return " ".join(texts)


def _first_tool(params: dict[str, Any]) -> dict[str, Any] | None:
    tools = params.get("tools")
    if (
        isinstance(tools, list)
        and tools
        and isinstance(tools[0], dict)
        and isinstance(tools[0].get("name"), str)
    ):
        return tools[0]
    return None


def _tool_input(tool: dict[str, Any]) -> dict[str, Any]:
    """A placeholder per property of the tool's input schema: deterministic, and of the right type."""
    schema = tool.get("input_schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    return {
        name: _placeholder(spec.get("type") if isinstance(spec, dict) else None)
        for name, spec in properties.items()
    }


def _placeholder(json_type: Any) -> Any:
    return {"string": "echo", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(
        json_type
    )
