"""The one error shape of the HTTP API: `{"error": {"code", "message", "details"}}`, whatever
failed (a route's own check, FastAPI's parameter validation, an unknown path, an exception)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as is: `status`, a stable machine `code`, a message for people and
    `details` (a list of located problems, or an object)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details if details is not None else []}}


# Codes for the statuses Starlette raises itself (unknown path, wrong method).
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_runs",
    500: "internal",
    503: "unavailable",
}
