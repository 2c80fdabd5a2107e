"""Anthropic's error envelope: `{"type": "error", "error": {"type", "message"}, "request_id"}`.

HTTP errors carry it as the body (with the `request-id` header); errored batch results carry the
same envelope nested inside the result (contract §3.4).
"""

from typing import Any

from starlette.responses import Response

from batchway.simulator.errors import ErrorDialect, SimulatorError
from batchway.simulator.responses import json_response

# Anthropic's error `type` per HTTP status (contract §3.4); other 4xx are invalid_request_error and
# other 5xx api_error, as Anthropic's docs say.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_envelope(status: int, message: str, request_id: str | None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id,
    }


class AnthropicError(SimulatorError):
    def response(self, request_id: str) -> Response:
        return json_response(error_envelope(self.status_code, self.message, request_id), self.status_code)


def invalid_request(message: str) -> AnthropicError:
    return AnthropicError(400, message)


def not_found(batch_id: str) -> AnthropicError:
    return AnthropicError(404, f"Message batch not found: {batch_id}")


def _invalid_param(param: str | None, problem: str) -> SimulatorError:
    return AnthropicError(400, f"{param}: {problem}" if param else problem)


ANTHROPIC_DIALECT = ErrorDialect(error=AnthropicError, invalid_param=_invalid_param)
