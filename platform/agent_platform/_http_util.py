"""HTTP helpers shared by every client of a remote service the platform has (the model providers,
the OpenAI-compatible embedder): is a URL this machine, and how long did the server ask us to
wait."""

from __future__ import annotations

import email.utils
import time
from urllib.parse import urlsplit

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def is_local_url(url: str | None) -> bool:
    """Whether `url` points at this machine (a local llama.cpp/vLLM/Ollama server)."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's requested delay, from the `retry-after-ms` or `retry-after` header (seconds or
    an HTTP date) of the SDK error behind `exc` (its `__cause__`), if any."""
    hinted = getattr(exc, "retry_after", None)
    if isinstance(hinted, int | float):
        return max(0.0, float(hinted))
    for candidate in (exc, exc.__cause__):
        response = getattr(candidate, "response", None)
        headers = getattr(response, "headers", None)
        if headers is None:
            continue
        try:
            millis = headers.get("retry-after-ms")
            if millis is not None:
                return max(0.0, float(millis) / 1000)
            value = headers.get("retry-after")
        except (TypeError, ValueError, AttributeError):
            return None
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None
