"""A Weaviate URL: the REST and gRPC endpoints it names (see the package docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from agent_platform._memory.stores.base import InvalidStoreUrl
from agent_platform._redaction import redact_secrets

BACKEND = "weaviate"
DEFAULT_GRPC_PORT = 50051
_GRPC_PORT_VALUE = re.compile(r"[0-9]{1,5}")
_HOST_VALUE = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True)
class WeaviateEndpoint:
    """Where the client connects: REST and gRPC. Hosts are ready for a URL (IPv6 in brackets)."""

    http_host: str
    http_port: int
    http_secure: bool
    grpc_host: str
    grpc_port: int
    grpc_secure: bool

    @property
    def rest(self) -> str:
        return f"{'https' if self.http_secure else 'http'}://{self.http_host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}{' (TLS)' if self.grpc_secure else ''}"


def location_of(url: str) -> str:
    return redact_secrets(url)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_weaviate_url(url: str) -> WeaviateEndpoint:
    """The endpoints a Weaviate URL names (see the package docstring), or `InvalidStoreUrl` saying
    what is wrong with it. Unknown query parameters are refused, so a typo is not ignored."""
    location = location_of(url)

    def bad(why: str) -> InvalidStoreUrl:
        return InvalidStoreUrl(why, backend=BACKEND, location=location, operation="open")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise bad(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise bad("a Weaviate URL is http:// or https:// (its REST endpoint), e.g. http://localhost:8080")
    host = parts.hostname
    if not host:
        raise bad("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise bad(
            "credentials do not belong in the URL: put the API key in an environment variable "
            "and name it with api_key_env"
        )
    if parts.path not in ("", "/"):
        raise bad(f"Weaviate is served at the root; a path ({parts.path!r}) is not supported")
    if parts.fragment:
        raise bad("a URL fragment is not supported")
    if port == 0:
        raise bad("port 0 is not a port to connect to")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise bad(f"malformed query string: {exc}") from None
    unknown = sorted(set(query) - {"grpc_port", "grpc_host"})
    if unknown:
        raise bad(f"unknown query parameter {', '.join(unknown)} (supported: grpc_port, grpc_host)")
    for name, values in query.items():
        if len(values) != 1:
            raise bad(f"{name} is given {len(values)} times")

    secure = scheme == "https"
    grpc_port = DEFAULT_GRPC_PORT
    if "grpc_port" in query:
        raw = query["grpc_port"][0]
        if not _GRPC_PORT_VALUE.fullmatch(raw) or not 1 <= int(raw) <= 65535:
            raise bad(f"grpc_port must be a port number (1-65535), not {raw!r}")
        grpc_port = int(raw)
    grpc_host = _bracketed(host)
    if "grpc_host" in query:
        raw = query["grpc_host"][0]
        if not _HOST_VALUE.fullmatch(raw):
            raise bad(f"grpc_host must be a host name or address, not {raw!r}")
        grpc_host = raw
    return WeaviateEndpoint(
        http_host=_bracketed(host),
        http_port=port if port is not None else (443 if secure else 80),
        http_secure=secure,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        grpc_secure=secure,
    )
