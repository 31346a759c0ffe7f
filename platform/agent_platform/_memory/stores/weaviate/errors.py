"""Which store error a Weaviate client exception is (timeout, unavailable, or other)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from weaviate import exceptions as wexc

from agent_platform._memory.stores.base import StoreTimeout, StoreUnavailable, VectorStoreError


def causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _grpc_status(exc: BaseException) -> str | None:
    """The status name of a grpc exception (`UNAVAILABLE`, ...), without importing grpc."""
    if not type(exc).__module__.startswith("grpc"):
        return None
    code = getattr(exc, "code", None)
    if not callable(code):
        return None
    try:
        name = getattr(code(), "name", None)
    except Exception:
        return None
    return name if isinstance(name, str) else None


_UNREACHABLE = (
    wexc.WeaviateConnectionError,
    wexc.WeaviateStartUpError,
    wexc.WeaviateGRPCUnavailableError,
    wexc.WeaviateClosedClientError,
    wexc.AuthenticationFailedError,
    wexc.InsufficientPermissionsError,
    wexc.WeaviateRetryError,  # the client gave up retrying an UNAVAILABLE gRPC call
    httpx.TransportError,
    ConnectionError,
)


def classify_error(exc: BaseException) -> type[VectorStoreError]:
    """Which store error a client exception is: timeouts, unreachable or refused, or other."""
    for cause in causes(exc):
        if isinstance(cause, wexc.WeaviateTimeoutError | httpx.TimeoutException | TimeoutError):
            return StoreTimeout
        if isinstance(cause, _UNREACHABLE):
            return StoreUnavailable
        if isinstance(cause, wexc.UnexpectedStatusCodeError) and cause.status_code >= 100:
            if cause.status_code == 504:
                return StoreTimeout
            if cause.status_code in (401, 403, 502, 503):
                return StoreUnavailable
        status = _grpc_status(cause)
        if status == "DEADLINE_EXCEEDED":
            return StoreTimeout
        if status in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
            return StoreUnavailable
    if isinstance(exc, wexc.WeaviateQueryError):  # raised inside `except`, sometimes without a cause
        text = str(exc)
        if "DEADLINE_EXCEEDED" in text or "Deadline Exceeded" in text:
            return StoreTimeout
        if "UNAVAILABLE" in text:
            return StoreUnavailable
    return VectorStoreError


def shorten(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
