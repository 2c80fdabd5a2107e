"""`UntranslatableRequest`: an OpenAI request batchway cannot send to Anthropic faithfully."""

from __future__ import annotations

from typing import Any

# `param` paths start at the line's `body`, e.g. `body.messages[2].content[0].type`.
PARAM_ROOT = "body"


def param_path(field: str) -> str:
    return f"{PARAM_ROOT}.{field}"


class UntranslatableRequest(ValueError):
    """A chat/completions request with no faithful Anthropic translation. `param` names the OpenAI field."""

    code = "untranslatable_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def error_body(self) -> dict[str, Any]:
        """The OpenAI error envelope for this request's 400 error line."""
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }
