"""The OpenAI error envelope as an exception: raise `APIError` anywhere below the API layer and the
API renders `{"error": {"message", "type", "param", "code"}}` with its status."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(object_name: str, object_id: str, *, param: str = "id") -> APIError:
    return APIError(404, f"No such {object_name} object: {object_id}", param=param)


def unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key")
