"""HTTP errors in the envelope of the API that raised them.

Each simulated API raises its own `SimulatorError` subclass; the app has one handler that asks the
exception to render itself. Errors raised outside any route (unknown URL, bad query parameter, a
crash) are turned into the envelope of the API whose path they hit through an `ErrorDialect`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from batchway.simulator.responses import json_response


class SimulatorError(Exception):
    """An HTTP error response, raised anywhere below a route."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message

    def response(self, request_id: str) -> Response:
        raise NotImplementedError


class OpenAIError(SimulatorError):
    """OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`, all four keys always present."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(status_code, message)
        self.type = type
        self.param = param
        self.code = code

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self, request_id: str) -> Response:
        return json_response(self.envelope(), self.status_code)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def not_found(object_name: str, object_id: str, param: str = "id") -> OpenAIError:
    return OpenAIError(404, f"No such {object_name} object: {object_id}", param=param)


@dataclass(frozen=True)
class ErrorDialect:
    """How one API words the errors that happen outside its route code."""

    error: Callable[[int, str], SimulatorError]  # (status, message): unknown URL, wrong method, crash
    invalid_param: Callable[[str | None, str], SimulatorError]  # (param, problem): bad query/path value


def _openai_error(status: int, message: str) -> SimulatorError:
    return OpenAIError(status, message, type="server_error" if status >= 500 else "invalid_request_error")


def _openai_invalid_param(param: str | None, problem: str) -> SimulatorError:
    message = f"Invalid '{param}': {problem}." if param else "Invalid request."
    return OpenAIError(400, message, param=param)


OPENAI_DIALECT = ErrorDialect(error=_openai_error, invalid_param=_openai_invalid_param)
