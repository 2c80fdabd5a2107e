"""OpenAI `/v1/chat/completions` request body → Anthropic Messages `params` (contract §4.1).

The top-level fields are handled here and `messages` in `translate_messages`.

Pure: no I/O. A request that has no faithful Anthropic equivalent raises `UntranslatableRequest`. It
carries a message the client can act on, and `param`, the OpenAI field at fault (for example
`body.messages[2].content[0].type`). The adapter turns it into a 400 error line for that request.

Decisions where the contract leaves a choice:
- System and developer messages are lifted, in order, into the top-level `system`, so a system message
  in the middle of a conversation loses its position. A single one with string content becomes a
  string; otherwise `system` is a list of text blocks.
- `temperature` above 1 is rejected, not clamped. Anthropic's scale stops at 1, and clamping would
  quietly change the sampling the client asked for. `top_p: 1` means "no cut-off" and is dropped.
  When `temperature` and `top_p` are both set (newer Claude models refuse that pair, §0.2), a
  `temperature` of 1 (Anthropic's default) is dropped and `top_p` kept. Any other pair is rejected,
  because dropping either value would change the sampling.
- `response_format` `json_schema` → `output_config.format`. `text` is dropped. `json_object` is
  rejected: Anthropic only constrains output to a schema, and a prompt instruction would not give the
  valid-JSON guarantee the client relies on.
- `reasoning_effort` is dropped. Anthropic's equivalents (`thinking`, `output_config.effort`) depend on
  the model and fail on models without them.
- A tool's `strict` is dropped: the schema is still sent, but without the guarantee, because `strict`
  is only accepted by some Anthropic models.
- Text that is empty or whitespace-only is dropped (Anthropic rejects such text blocks). A user message
  left with nothing is rejected.
- Tool-call `arguments` that are empty (`""`) or null are read as `{}`.
- Legacy `functions`/`function_call` are translated like `tools`/`tool_choice`. An assistant
  `function_call` message is rejected, because it has no id for its result to refer to.
- Consecutive turns with the same role are merged (tool results go into the user turn). Within a user
  turn, the `tool_result` blocks are moved first, which Anthropic requires. A user turn that is a single
  text block is sent as a plain string.
- Unknown top-level fields are rejected, as OpenAI rejects them. Unknown keys inside a message or a
  content part (`name`, `prompt_cache_breakpoint`, `detail`, ...) are ignored.
- `tool_choice` is only sent when there are tools (Anthropic refuses it otherwise). `required` or a
  named tool without `tools` is rejected.
- A final assistant message becomes a prefill on Anthropic (the reply continues it). Some models
  refuse prefill. That is left to Anthropic to report.
- `safety_identifier` wins over `user` for `metadata.user_id` (it is the newer field replacing `user`).
- Images: `image/jpg` is read as `image/jpeg`. Files: only PDFs given inline in `file_data` (a data URL
  or bare base64 that starts like a PDF). A `file_id` is rejected, since this translation does no I/O.
- `moderation` (newer than §4.1) is rejected because it asks for a check batchway cannot run.
  `prompt_cache_options`/`prompt_cache_retention` are dropped like `prompt_cache_key`.
- `param` paths start with `body.`, as the brief asks (§4.1 writes `param:"n"` without the prefix).
  `PARAM_ROOT` in `untranslatable` changes that in one place.
"""

from __future__ import annotations

from typing import Any

from batchway.upstreams.anthropic.translate_messages import translate_messages
from batchway.upstreams.anthropic.untranslatable import PARAM_ROOT, UntranslatableRequest, param_path

# Translated into `params`.
TRANSLATED_FIELDS = frozenset({
    "model", "messages", "max_completion_tokens", "max_tokens", "temperature", "top_p", "stop",
    "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "response_format",
    "user", "safety_identifier",
})  # fmt: skip
# Accepted only with a value that asks for nothing Anthropic lacks (n=1, stream=false, ...).
CHECKED_FIELDS = frozenset({
    "n", "stream", "logprobs", "top_logprobs", "modalities", "audio", "moderation",
})  # fmt: skip
# No Anthropic equivalent, and ignoring them still gives the client a correct answer (§4.1).
DROPPED_FIELDS = frozenset({
    "stream_options", "metadata", "store", "service_tier", "seed", "prompt_cache_key",
    "prompt_cache_options", "prompt_cache_retention", "logit_bias", "presence_penalty",
    "frequency_penalty", "prediction", "web_search_options", "verbosity", "reasoning_effort",
})  # fmt: skip
KNOWN_FIELDS = TRANSLATED_FIELDS | CHECKED_FIELDS | DROPPED_FIELDS

TOOL_CHOICE_MODES = {"auto": "auto", "required": "any", "none": "none"}

__all__ = ["UntranslatableRequest", "to_anthropic_params"]


def to_anthropic_params(body: dict[str, Any], *, default_max_tokens: int) -> dict[str, Any]:
    """The Anthropic Messages `params` for one OpenAI chat/completions request `body`."""
    if not isinstance(body, dict):
        raise UntranslatableRequest("The request body must be a JSON object.", PARAM_ROOT)
    _reject_unknown_fields(body)
    _reject_unsupported_features(body)
    system, messages = translate_messages(body.get("messages"))
    params: dict[str, Any] = {
        "model": _model(body),
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": messages,
    }
    if system is not None:
        params["system"] = system
    params.update(_sampling(body))
    if stop_sequences := _stop_sequences(body.get("stop")):
        params["stop_sequences"] = stop_sequences
    params.update(_tools_and_choice(body))
    if output_format := _output_format(body.get("response_format")):
        params["output_config"] = {"format": output_format}
    if user_id := _user_id(body):
        params["metadata"] = {"user_id": user_id}
    return params


# --- top-level fields ------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reject_unknown_fields(body: dict[str, Any]) -> None:
    for field in body:
        if field not in KNOWN_FIELDS:
            raise UntranslatableRequest(
                f"Unrecognized request argument '{field}': batchway cannot translate it for Anthropic.",
                param_path(field),
            )


def _reject_unsupported_features(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and not (_is_int(n) and n == 1):
        raise UntranslatableRequest(
            "Anthropic returns one choice per request, so 'n' must be 1. "
            "Send n separate lines with their own custom_id instead.",
            param_path("n"),
        )
    if body.get("stream"):
        raise UntranslatableRequest(
            "Streaming is not supported in a batch; remove 'stream' or set it to false.", param_path("stream")
        )
    for field in ("logprobs", "top_logprobs"):
        if body.get(field):
            raise UntranslatableRequest(
                f"Anthropic models do not return log probabilities; remove '{field}'.", param_path(field)
            )
    modalities = body.get("modalities")
    if modalities is not None and not (
        isinstance(modalities, list) and all(modality == "text" for modality in modalities)
    ):
        raise UntranslatableRequest(
            "Anthropic models only produce text; 'modalities' must be [\"text\"] or absent.",
            param_path("modalities"),
        )
    if body.get("audio") is not None:
        raise UntranslatableRequest(
            "Anthropic models cannot produce audio; remove 'audio'.", param_path("audio")
        )
    if body.get("moderation") is not None:
        raise UntranslatableRequest(
            "OpenAI moderation cannot run on requests sent to Anthropic; remove 'moderation'.",
            param_path("moderation"),
        )


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UntranslatableRequest("'model' must be a non-empty string.", param_path("model"))
    return model


def _max_tokens(body: dict[str, Any], default: int) -> int:
    """`max_completion_tokens`, else `max_tokens`, else the default: Anthropic requires a value."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise UntranslatableRequest(f"'{field}' must be a positive integer.", param_path(field))
        return value
    return default


def _unit_interval(body: dict[str, Any], field: str, hint: str = "") -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise UntranslatableRequest(f"'{field}' must be a number between 0 and 1{hint}.", param_path(field))
    return value


def _sampling(body: dict[str, Any]) -> dict[str, float]:
    temperature = _unit_interval(
        body, "temperature", " on Anthropic models (OpenAI allows up to 2, but Anthropic's scale ends at 1)"
    )
    top_p = _unit_interval(body, "top_p")
    if top_p == 1:
        top_p = None  # no nucleus cut-off: the same as not sending it
    if temperature is not None and top_p is not None:
        if temperature != 1:
            raise UntranslatableRequest(
                "Anthropic models do not accept 'temperature' and 'top_p' together; send only one of them.",
                param_path("top_p"),
            )
        temperature = None  # 1 is Anthropic's default, so only top_p matters
    sampling = {"temperature": temperature, "top_p": top_p}
    return {name: value for name, value in sampling.items() if value is not None}


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(sequence, str) for sequence in stop):
        raise UntranslatableRequest("'stop' must be a string or an array of strings.", param_path("stop"))
    return [sequence for sequence in stop if sequence]


def _output_format(response_format: Any) -> dict[str, Any] | None:
    if response_format is None:
        return None
    at = param_path("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise UntranslatableRequest(
                "response_format 'json_schema' needs a JSON schema object in 'json_schema.schema'.",
                f"{at}.json_schema.schema",
            )
        return {"type": "json_schema", "schema": schema}
    if kind == "json_object":
        raise UntranslatableRequest(
            "response_format 'json_object' has no Anthropic equivalent: Anthropic only constrains output to "
            "a JSON schema. Use response_format type 'json_schema' with a schema instead.",
            f"{at}.type",
        )
    raise UntranslatableRequest(
        "response_format type must be 'text' or 'json_schema' for Anthropic models.", f"{at}.type"
    )


def _user_id(body: dict[str, Any]) -> str | None:
    """`safety_identifier` (the newer field) or `user`: Anthropic's `metadata.user_id`."""
    for field in ("safety_identifier", "user"):
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise UntranslatableRequest(f"'{field}' must be a string.", param_path(field))
        if value:
            return value
    return None


# --- tools ---------------------------------------------------------------------------------------------


def _tools_and_choice(body: dict[str, Any]) -> dict[str, Any]:
    tools = _tools(body)
    if not tools:
        _tool_choice(body, has_tools=False)  # still reject a choice that needs a tool
        return {}
    translated: dict[str, Any] = {"tools": tools}
    choice = _tool_choice(body, has_tools=True)
    if body.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        translated["tool_choice"] = choice
    return translated


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools, functions = body.get("tools"), body.get("functions")
    if tools is not None and functions is not None:
        raise UntranslatableRequest(
            "Send either 'tools' or the deprecated 'functions', not both.", param_path("functions")
        )
    if functions is not None:
        if not isinstance(functions, list):
            raise UntranslatableRequest("'functions' must be an array.", param_path("functions"))
        return [
            _function_tool(function, param_path(f"functions[{i}]")) for i, function in enumerate(functions)
        ]
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise UntranslatableRequest("'tools' must be an array.", param_path("tools"))
    translated = []
    for i, tool in enumerate(tools):
        at = param_path(f"tools[{i}]")
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise UntranslatableRequest(
                f"Tools of type '{kind}' cannot be translated for Anthropic; only 'function' tools can.",
                f"{at}.type",
            )
        translated.append(_function_tool(tool.get("function"), f"{at}.function"))
    return translated


def _function_tool(function: Any, at: str) -> dict[str, Any]:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise UntranslatableRequest("A function tool needs a 'name'.", f"{at}.name")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise UntranslatableRequest(
            "A function's 'parameters' must be a JSON schema object.", f"{at}.parameters"
        )
    tool: dict[str, Any] = {"name": function["name"]}
    description = function.get("description")
    if isinstance(description, str) and description:
        tool["description"] = description
    # Anthropic requires a schema; a function without parameters takes an empty object.
    tool["input_schema"] = parameters or {"type": "object", "properties": {}}
    return tool


def _requested_tool_choice(body: dict[str, Any]) -> tuple[Any, str]:
    """`tool_choice`, or the deprecated `function_call` in its shape, with the field it came from."""
    choice, legacy = body.get("tool_choice"), body.get("function_call")
    if legacy is None:
        return choice, param_path("tool_choice")
    if choice is not None:
        raise UntranslatableRequest(
            "Send either 'tool_choice' or the deprecated 'function_call', not both.",
            param_path("function_call"),
        )
    if isinstance(legacy, dict):
        legacy = {"type": "function", "function": legacy}
    return legacy, param_path("function_call")


def _tool_choice(body: dict[str, Any], *, has_tools: bool) -> dict[str, Any] | None:
    choice, at = _requested_tool_choice(body)
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_CHOICE_MODES:
        translated: dict[str, Any] = {"type": TOOL_CHOICE_MODES[choice]}
    elif _named_function(choice) is not None:
        translated = {"type": "tool", "name": _named_function(choice)}
    else:
        raise UntranslatableRequest(
            "tool_choice must be 'auto', 'required', 'none' or {\"type\": \"function\", \"function\": "
            '{"name": ...}}; other forms (allowed_tools, custom) cannot be translated for Anthropic.',
            at,
        )
    if not has_tools and translated["type"] in ("any", "tool"):
        raise UntranslatableRequest("tool_choice asks for a tool call but the request has no 'tools'.", at)
    return translated


def _named_function(choice: Any) -> str | None:
    if not isinstance(choice, dict) or choice.get("type") != "function":
        return None
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) and name else None
