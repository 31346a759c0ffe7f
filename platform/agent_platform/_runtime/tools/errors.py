"""Typed tool errors, and the classification of arbitrary exceptions into retry categories.

Every error a tool call can end in is a `ToolError` with a `category` (for retry policies, the
circuit breaker and traces) and `for_model()` (the text the model sees in its tool result: enough to
fix its arguments or change course, never a traceback or a secret).

Retry categories (`RetryPolicy.retry_on`): `timeout`, `connection`, `rate_limit`, `server_error`,
`validation`. A plugin can put its own exceptions in a category by giving them a class or instance
attribute `retry_category = "rate_limit"` (for example); `classify()` also knows the built-in
`TimeoutError` / `ConnectionError` families and httpx's exceptions (when httpx is loaded).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

RETRY_CATEGORIES = frozenset({"timeout", "connection", "rate_limit", "server_error", "validation"})


class ToolError(Exception):
    """Base of every error a tool call ends in."""

    category: str | None = None

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(f"tool '{tool}': {message}")
        self.tool = tool
        self.message = message
        self.attempts = 0

    def for_model(self) -> str:
        """The error as shown to the model in the tool result."""
        return self.message


class ToolArgumentsInvalid(ToolError):
    """The arguments do not match the tool's schema. The tool was not called; not retried. The
    model can fix its arguments from `errors`."""

    category = "arguments"

    def __init__(self, tool: str, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        listing = "\n".join(f"- {e}" for e in self.errors)
        super().__init__(tool, f"invalid arguments:\n{listing}")

    def for_model(self) -> str:
        return "The arguments are invalid; fix them and call the tool again:\n" + "\n".join(
            f"- {e}" for e in self.errors
        )


class ToolTimeout(ToolError):
    category = "timeout"

    def __init__(self, tool: str, timeout_s: float) -> None:
        super().__init__(tool, f"timed out after {timeout_s:g}s")
        self.timeout_s = timeout_s


class ToolFailed(ToolError):
    """The tool raised. `cause` is the original exception, `category` its retry category (None
    when it belongs to none: a plugin's own ValueError, say)."""

    def __init__(self, tool: str, cause: BaseException, category: str | None = None) -> None:
        text = str(cause) or type(cause).__name__
        super().__init__(tool, f"{type(cause).__name__}: {text}")
        self.cause = cause
        self.category = category
        self.__cause__ = cause


class ToolOutputInvalid(ToolError):
    """The tool's result does not match its `output_schema` (or is not JSON-serialisable)."""

    category = "validation"

    def __init__(self, tool: str, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__(tool, "invalid output: " + "; ".join(self.errors))


class CircuitOpen(ToolError):
    """The tool's circuit breaker is open: the call was not attempted. `retry_after_s` is the time
    until the breaker lets a trial call through (0 when half-open trial slots are all taken)."""

    category = "circuit_open"

    def __init__(self, tool: str, retry_after_s: float, *, half_open: bool = False) -> None:
        self.retry_after_s = max(0.0, retry_after_s)
        if half_open:
            message = "circuit half-open: a trial call is in flight; try again shortly"
        else:
            message = f"circuit open after repeated failures; not called (retry in {self.retry_after_s:.1f}s)"
        super().__init__(tool, message)


class ToolNotAllowed(ToolError):
    """The tool is not on the caller's allow-list (or its required approval was not given). It
    was never called."""

    category = "not_allowed"

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(tool, reason)


class ToolUnavailable(ToolError):
    """The tool cannot be called at all: unknown name, import failure, missing environment
    variable, an MCP server that cannot start or whose tools drifted from the lock."""

    category = "unavailable"

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(tool, reason)


class IdempotencyConflict(ToolError):
    """A call under the same idempotency key is still in progress elsewhere and did not finish
    while we waited, or no idempotency key could be derived. The side effect was not performed."""

    category = "idempotency"

    def __init__(self, tool: str, key_hint: str, reason: str) -> None:
        super().__init__(tool, reason)
        self.key_hint = key_hint


class CategorizedError(Exception):
    """An exception that carries its retry category (raised by the HTTP tool)."""

    def __init__(self, message: str, retry_category: str | None) -> None:
        super().__init__(message)
        self.retry_category = retry_category


class HttpStatusError(CategorizedError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status_category(status))
        self.status = status


def status_category(status: int) -> str | None:
    """429 -> rate_limit, 408 -> timeout, 5xx -> server_error, anything else -> None."""
    if status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    if 500 <= status <= 599:
        return "server_error"
    return None


def classify(exc: BaseException) -> str | None:
    """The retry category of an exception, or None."""
    if isinstance(exc, ToolError):
        return exc.category if exc.category in RETRY_CATEGORIES else None
    declared: Any = getattr(exc, "retry_category", None)
    if isinstance(declared, str) and declared in RETRY_CATEGORIES:
        return declared
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection"
    httpx = sys.modules.get("httpx")  # only if something already imported it
    if httpx is not None:
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        if isinstance(exc, httpx.TransportError):
            return "connection"
        if isinstance(exc, httpx.HTTPStatusError):
            return status_category(exc.response.status_code)
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError):
        return "validation"
    return None
