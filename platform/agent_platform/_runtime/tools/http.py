"""What an `http:` tool sends, and where.

The model chooses the arguments, so nothing it sends may change where the request goes:

- The scheme, host and port are written out in the spec (`split_url_origin` refuses anything else
  when the spec is validated) and checked again on the URL that is sent.
- Every value a template prints in the url is percent-encoded whole (`quote(safe="")`): in the
  path it stays one segment (`42/../../admin` arrives as `42%2F..%2F..%2Fadmin`), in the query one
  value (`x&page=9` cannot add a parameter). A segment that would come out as `.`, `..` or empty
  (`/items/{{ id }}` with `id=''` would address the collection) is refused before anything is sent.
- Credentials (headers whose template reads `env`, and Authorization, Proxy-Authorization and
  Cookie whatever their source) go to the declared origin only. Redirects are followed here, not
  by httpx: within the origin (or its upgrade from http to https) with every header; to a host in
  `allowed_hosts` without the credentials (and not at all when a re-sent body reads `env`, or the
  redirect drops from https to http); anywhere else not at all.

Every template renders in the bounded sandbox (`agent_platform._template_sandbox`), through
`agent_platform._runtime.rendering`, with its place in the spec (`spec.http.headers.X`) named in
any error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from jinja2 import Template, nodes

from agent_platform._runtime.rendering import compile_template, render_template, render_value
from agent_platform._runtime.tools.errors import CategorizedError
from agent_platform._spec.kinds import HttpImplementation, split_url_origin
from agent_platform._template_sandbox import bounded_environment
from agent_platform._validate.templates import is_template

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
# Sent only to the declared origin, whatever their value is made of.
ALWAYS_CREDENTIALS = frozenset({"authorization", "proxy-authorization", "cookie"})

# Brackets each value printed in the url while it is checked. Encoded values never contain it, and
# `HttpRequestTemplates` refuses a url whose own text does.
_VALUE_MARK = "\x00"


class UnsafeUrlValue(ValueError):
    """A value would change the url's path structure (a '.', '..' or empty segment)."""


class RedirectRefused(CategorizedError):
    """A redirect led somewhere the tool may not go (no retry: it would lead there again)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None)


def _encode_url_value(value: Any) -> str:
    """What `{{ value }}` prints in the part of a url after its origin: the value's text,
    percent-encoded whole."""
    return _VALUE_MARK + quote(str(value), safe="") + _VALUE_MARK


def referenced_env_vars(source: str) -> set[str]:
    """Names used as `env.NAME` or `env['NAME']` in a template."""
    found: set[str] = set()
    tree = bounded_environment().parse(source)
    for getattr_node in tree.find_all(nodes.Getattr):
        if isinstance(getattr_node.node, nodes.Name) and getattr_node.node.name == "env":
            found.add(getattr_node.attr)
    for getitem_node in tree.find_all(nodes.Getitem):
        base, arg = getitem_node.node, getitem_node.arg
        if isinstance(base, nodes.Name) and base.name == "env" and isinstance(arg, nodes.Const):
            if isinstance(arg.value, str):
                found.add(arg.value)
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: httpx.URL) -> Origin:
        return cls(url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 0))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def _allowed_host(entry: str) -> tuple[str, int | None]:
    """`host` or `host:port` from `allowed_hosts`, as httpx spells hosts (lower case, no brackets)."""
    import httpx

    parsed = httpx.URL(f"http://{entry}/")
    return parsed.host, parsed.port


def _check_path(path: str) -> None:
    """Refuse a path in which a printed value is a whole '.', '..' or empty segment."""
    for segment in path.split("/"):
        if _VALUE_MARK not in segment:
            continue
        plain = segment.replace(_VALUE_MARK, "")
        if plain == "" or unquote(plain) in (".", ".."):
            raise UnsafeUrlValue(
                f"url: a value would make the path segment {plain!r}: each value is one path segment, "
                "and '.', '..' and empty segments are refused"
            )


class HttpRequestTemplates:
    """An `http:` spec compiled: its fixed origin, the templates of the rest of the url, headers,
    query and body, the environment variables they read, and which headers are credentials."""

    def __init__(self, http: HttpImplementation) -> None:
        import httpx

        if _VALUE_MARK in http.url:
            raise ValueError("the url contains a NUL character")
        origin_text, rest = split_url_origin(http.url)
        self.origin_text = origin_text
        self.origin = Origin.of(httpx.URL(origin_text + "/"))
        self._rest_text = rest
        self._rest: Template | None = (
            bounded_environment(_encode_url_value).from_string(rest) if is_template(rest) else None
        )
        self._headers = dict(http.headers)
        self._query = dict(http.query)
        self._body = http.body
        for text in [*self._headers.values(), *self._query.values(), *_strings(self._body)]:
            if is_template(text):
                compile_template(text)  # a syntax error shows now, not at the first call
        self.env_names: set[str] = set()
        header_env: dict[str, set[str]] = {}
        for name, text in self._headers.items():
            header_env[name] = referenced_env_vars(text)
            self.env_names |= header_env[name]
        body_env = {v for text in _strings(self._body) for v in referenced_env_vars(text)}
        for text in [http.url, *self._query.values()]:
            self.env_names |= referenced_env_vars(text)
        self.env_names |= body_env
        self.credential_headers = (
            frozenset(name.lower() for name, names in header_env.items() if names) | ALWAYS_CREDENTIALS
        )
        self.body_reads_env = bool(body_env)
        self.allowed_hosts = frozenset(_allowed_host(entry) for entry in http.allowed_hosts)

    def url(self, context: Mapping[str, Any]) -> str:
        """The url to send; `UnsafeUrlValue` when a value would be a '.', '..' or empty segment."""
        if self._rest is None:
            return self.origin_text + self._rest_text
        rest = render_template(self._rest, context, where="spec.http.url")
        query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        _check_path(rest[:query_at])
        return self.origin_text + rest.replace(_VALUE_MARK, "")

    def headers(self, context: Mapping[str, Any]) -> dict[str, str]:
        return {
            name: _as_text(render_value(text, context, where=f"spec.http.headers.{name}"))
            for name, text in self._headers.items()
        }

    def query(self, context: Mapping[str, Any]) -> dict[str, str]:
        return {
            name: _as_text(render_value(text, context, where=f"spec.http.query.{name}"))
            for name, text in self._query.items()
        }

    def body(self, context: Mapping[str, Any]) -> Any:
        """The rendered body template (None when the spec has none)."""
        if self._body is None:
            return None
        return render_value(self._body, context, where="spec.http.body")

    # sending

    async def send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """Send, following redirects as the module docstring says (never httpx's own following)."""
        if Origin.of(request.url) != self.origin:  # cannot happen: the origin is literal text
            raise RedirectRefused(f"the url renders to {Origin.of(request.url)}, not {self.origin}")
        for hop in range(MAX_REDIRECTS + 1):
            response = await client.send(request, follow_redirects=False)
            following = response.next_request
            if following is None:
                return response
            if hop == MAX_REDIRECTS:
                raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects, the last to {following.url}")
            request = self._redirect(request, following)
        raise AssertionError("unreachable")

    def _redirect(self, previous: httpx.Request, following: httpx.Request) -> httpx.Request:
        target = Origin.of(following.url)
        where = f"{target.host}:{target.port}"
        if target.scheme == "http" and previous.url.scheme == "https":
            raise RedirectRefused(f"redirect to {where} refused: it drops from https to http")
        if target == self.origin or (
            target.host == self.origin.host
            and (self.origin.scheme, self.origin.port, target.scheme, target.port)
            == ("http", 80, "https", 443)
        ):
            return following  # the declared host: httpx has kept every header
        if (target.host, target.port) not in self.allowed_hosts and (
            target.port != DEFAULT_PORTS.get(target.scheme) or (target.host, None) not in self.allowed_hosts
        ):
            raise RedirectRefused(
                f"redirect to {where} refused: it is neither the tool's host ({self.origin.host}:"
                f"{self.origin.port}) nor in its allowed_hosts"
            )
        if self.body_reads_env and following.method == previous.method and previous.content:
            raise RedirectRefused(
                f"redirect to {where} refused: it would re-send a body built from environment variables"
            )
        for name in self.credential_headers:
            following.headers.pop(name, None)
        return following


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
