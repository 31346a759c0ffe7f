"""HTTP tools against a local server on 127.0.0.1: templated URL, headers and query, environment
variables restricted to those named, 5xx/429 retried per policy, 4xx not, timeouts, transport
errors; arguments confined to single path segments and query values, and credentials that never
follow a redirect to another host (a second server on 127.0.0.2 records what reaches it)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import (
    HttpTool,
    ToolArgumentsInvalid,
    ToolExecutor,
    ToolFailed,
    ToolRegistry,
    ToolTimeout,
    ToolUnavailable,
)
from agent_platform._spec.kinds import ToolSpec


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), Handler)
        self.hits: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that timed out and hung up is expected here


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        seen = {
            "method": self.command,
            "raw_path": self.path,  # exactly as the request line sent it, before any decoding
            "path": url.path,
            "query": {k: v[0] for k, v in parse_qs(url.query).items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        self.server.requests.append(seen)
        hits = self.server.hits[url.path] = self.server.hits.get(url.path, 0) + 1
        if url.path.startswith("/flaky") and hits <= 2:
            self._reply(503, {"error": "overloaded"})
        elif url.path == "/redirect":
            target = parse_qs(url.query)
            self.send_response(int(target.get("status", ["302"])[0]))
            self.send_header("Location", target["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/limited":
            self._reply(429, {"error": "slow down"})
        elif url.path == "/missing":
            self._reply(404, {"error": "no such item"})
        elif url.path == "/slow":
            time.sleep(0.5)
            self._reply(200, {"late": True})
        elif url.path == "/text":
            data = b"plain words"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._reply(200, seen)

    do_GET = _handle
    do_POST = _handle
    do_DELETE = _handle


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def make(http: dict[str, Any], clock: FakeClock | None = None, **fields: Any) -> ToolExecutor:
    registry = ToolRegistry(plugin_paths=[], environ={"API_TOKEN": "s3cret", "UNRELATED": "nope"})
    fields.setdefault("description", "An HTTP tool.")
    spec = ToolSpec.model_validate({"http": http, **fields})
    return ToolExecutor([ToolBinding("h", spec)], registry, clock=clock or FakeClock())


ITEM_SCHEMA = {
    "type": "object",
    "required": ["item_id"],
    "properties": {"item_id": {"type": "integer"}, "q": {"type": "string"}},
}


async def test_templated_url_headers_and_query(server: Server) -> None:
    executor = make(
        {
            "url": base(server) + "/items/{{ args.item_id }}",
            "method": "GET",
            "headers": {"Authorization": "Bearer {{ env.API_TOKEN }}", "X-Item": "item-{{ args.item_id }}"},
            "query": {"q": "{{ args.q }}"},
        },
        input_schema=ITEM_SCHEMA,
    )
    http_tool = executor.tool("h")
    assert isinstance(http_tool, HttpTool) and http_tool.env_names == {"API_TOKEN"}
    result = await executor.call("h", {"item_id": 42, "q": "a b&c"}, run_id="r")
    assert not result.is_error, result.error
    seen = result.output
    assert seen["method"] == "GET" and seen["path"] == "/items/42"
    assert seen["query"] == {"q": "a b&c"}
    assert seen["headers"]["authorization"] == "Bearer s3cret"
    assert seen["headers"]["x-item"] == "item-42"
    assert seen["body"] == ""
    invalid = await executor.call("h", {"item_id": "42"}, run_id="r")
    assert isinstance(invalid.error, ToolArgumentsInvalid)
    await executor.aclose()


async def test_post_sends_the_arguments_or_the_templated_body(server: Server) -> None:
    default_body = make({"url": base(server) + "/echo"})
    result = await default_body.call("h", {"text": "hello", "n": 2}, run_id="r")
    assert json.loads(result.output["body"]) == {"text": "hello", "n": 2}
    assert result.output["headers"]["content-type"] == "application/json"

    templated = make(
        {
            "url": base(server) + "/echo",
            "body": {"message": "{{ args.text | upper }}", "count": "{{ args.n }}"},
        }
    )
    result = await templated.call("h", {"text": "hello", "n": 2}, run_id="r")
    assert json.loads(result.output["body"]) == {
        "message": "HELLO",
        "count": 2,
    }  # a lone expression keeps its type

    missing = await templated.call("h", {"n": 2}, run_id="r")  # no args.text: strict, not None
    assert isinstance(missing.error, ToolUnavailable) and "has no attribute 'text'" in missing.error.message

    text = make({"url": base(server) + "/text", "method": "GET"})
    assert (await text.call("h", {}, run_id="r")).output == "plain words"
    for executor in (default_body, templated, text):
        await executor.aclose()


async def test_server_errors_are_retried_and_client_errors_are_not(server: Server) -> None:
    clock = FakeClock()
    policy = {"max_attempts": 3, "backoff": {"initial": 0.25, "jitter": "none"}, "retry_on": ["server_error"]}
    flaky = make({"url": base(server) + "/flaky-1", "method": "GET"}, clock, retry=policy)
    result = await flaky.call("h", {}, run_id="r")
    assert not result.is_error, result.error
    assert result.attempts == 3 and server.hits["/flaky-1"] == 3
    assert clock.sleeps == [0.25, 0.5]

    missing = make({"url": base(server) + "/missing", "method": "GET"}, FakeClock(), retry=policy)
    result = await missing.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and result.error.category is None
    assert "HTTP 404" in result.error.message and "no such item" in result.error.message
    assert result.attempts == 1 and server.hits["/missing"] == 1

    limited = make({"url": base(server) + "/limited", "method": "GET"}, FakeClock(), retry=policy)
    result = await limited.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and result.error.category == "rate_limit"
    assert result.attempts == 1  # rate_limit not declared
    for executor in (flaky, missing, limited):
        await executor.aclose()


async def test_timeouts_connection_errors_and_missing_environment(server: Server) -> None:
    slow = make({"url": base(server) + "/slow", "method": "GET"}, timeout=0.1, retry={"max_attempts": 1})
    result = await slow.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolTimeout)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = make({"url": f"http://127.0.0.1:{closed_port}/x", "method": "GET"}, retry={"max_attempts": 1})
    result = await refused.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and result.error.category == "connection"

    secretless = make(
        {"url": base(server) + "/echo", "headers": {"X-Key": "{{ env['MISSING_TOKEN'] }}"}},
    )
    result = await secretless.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolUnavailable)
    assert "MISSING_TOKEN is not set" in result.error.message
    for executor in (slow, refused, secretless):
        await executor.aclose()


async def test_keyed_http_tools_send_the_idempotency_key_and_replay(server: Server, tmp_path: Any) -> None:
    from agent_platform._runtime.tools import SqliteIdempotencyStore

    registry = ToolRegistry(plugin_paths=[], environ={})
    spec = ToolSpec.model_validate(
        {
            "description": "Create an order.",
            "http": {
                "url": base(server) + "/orders",
                "headers": {"Idempotency-Key": "{{ idempotency_key }}"},
            },
            "side_effects": True,
            "requires_approval": False,  # about idempotency, not approval
            "idempotency": {"mode": "key"},
        }
    )
    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    executor = ToolExecutor(
        [ToolBinding("order", spec)], registry, clock=FakeClock(), idempotency_store=store
    )
    first = await executor.call("order", {"sku": "A1", "qty": 2}, run_id="run-1")
    again = await executor.call("order", {"qty": 2, "sku": "A1"}, run_id="run-1")
    assert not first.is_error, first.error
    assert len(first.output["headers"]["idempotency-key"]) == 64
    assert again.from_idempotency_store and again.output == first.output
    assert server.hits["/orders"] == 1
    await executor.aclose()
    await store.aclose()


# --- arguments stay inside the path segment or query value they were written for -------------


@pytest.fixture(scope="module")
def other_host() -> Iterator[Server]:
    """A second server on another loopback address: a different host, as far as HTTP goes."""
    srv = Server("127.0.0.2")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def other_base(srv: Server) -> str:
    return f"http://127.0.0.2:{srv.server_address[1]}"


TRAVERSAL = "42/../../admin/delete-all?confirm=yes#"


async def test_a_path_argument_is_one_encoded_segment(server: Server) -> None:
    executor = make({"url": base(server) + "/v1/items/{{ args.id }}", "method": "GET"})
    result = await executor.call("h", {"id": TRAVERSAL}, run_id="r")
    assert not result.is_error, result.error
    assert result.output["raw_path"] == "/v1/items/42%2F..%2F..%2Fadmin%2Fdelete-all%3Fconfirm%3Dyes%23"
    assert "/v1/admin/delete-all" not in server.hits
    spaced = await executor.call("h", {"id": "a b+c%2F"}, run_id="r")
    assert spaced.output["raw_path"] == "/v1/items/a%20b%2Bc%252F"
    await executor.aclose()


@pytest.mark.parametrize("segment", ["..", ".", "", "%2e%2e"])
async def test_dot_and_empty_path_segments_are_refused_before_sending(server: Server, segment: str) -> None:
    executor = make({"url": base(server) + "/v2/items/{{ args.id }}/detail", "method": "DELETE"})
    before = len(server.requests)
    result = await executor.call("h", {"id": segment}, run_id="r")
    if segment == "%2e%2e":  # encoded as data ('%252e%252e'): never decoded into a dot segment
        assert not result.is_error, result.error
        assert result.output["raw_path"] == "/v2/items/%252e%252e/detail"
    else:
        assert isinstance(result.error, ToolArgumentsInvalid), result.error
        assert "path segment" in result.error.message
        assert len(server.requests) == before
    await executor.aclose()


async def test_values_in_the_url_query_are_encoded_as_values(server: Server) -> None:
    executor = make({"url": base(server) + "/search?q={{ args.q }}&page=1", "method": "GET"})
    result = await executor.call("h", {"q": "x&page=999#frag"}, run_id="r")
    assert not result.is_error, result.error
    assert result.output["query"] == {"q": "x&page=999#frag", "page": "1"}
    assert result.output["raw_path"] == "/search?q=x%26page%3D999%23frag&page=1"
    await executor.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "https://{{ args.host }}/items",
        "{{ env.API_BASE }}/items",
        "http://127.0.0.1:{{ args.port }}/items",
        "https://api.example.com{{ args.path }}",
        "https://api.example.com.{{ args.tld }}/items",
        "https://{% if args.x %}evil.example{% else %}api.example.com{% endif %}/",
        "{{ args.scheme }}://api.example.com/items",
        "ftp://api.example.com/items",
        "https://user@api.example.com/items",
        "https://api.example.com/items/{{ args.id | urlencode }}",
    ],
)
def test_the_scheme_host_and_port_must_be_written_out(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ToolSpec.model_validate({"description": "d", "http": {"url": url}})
    assert [e["loc"] for e in caught.value.errors()] == [("http", "url")]


# --- redirects and credentials ------------------------------------------------------------------

SECRET_HEADERS = {"Authorization": "Bearer {{ env.API_TOKEN }}", "X-Api-Key": "{{ env.API_TOKEN }}"}


def redirect_to(server: Server, target: str, status: int = 302) -> str:
    from urllib.parse import quote

    return base(server) + f"/redirect?status={status}&to={quote(target, safe='')}"


@pytest.mark.parametrize("follow_redirects", [False, True])
async def test_a_redirect_to_another_host_is_refused_and_gets_no_credentials(
    server: Server, other_host: Server, follow_redirects: bool
) -> None:
    import httpx

    client = httpx.AsyncClient(follow_redirects=follow_redirects)  # the tool decides, not the client
    registry = ToolRegistry(plugin_paths=[], environ={"API_TOKEN": "s3cret"}, http_client=client)
    spec = ToolSpec.model_validate(
        {
            "description": "d",
            "http": {
                "url": base(server) + "/redirect?to={{ args.to }}",
                "method": "GET",
                "headers": SECRET_HEADERS,
            },
        }
    )
    executor = ToolExecutor([ToolBinding("h", spec)], registry, clock=FakeClock())
    before = len(other_host.requests)
    result = await executor.call("h", {"to": other_base(other_host) + "/steal"}, run_id="r")
    assert isinstance(result.error, ToolFailed), result
    assert "redirect" in result.error.message and "127.0.0.2" in result.error.message
    assert len(other_host.requests) == before
    await executor.aclose()
    await client.aclose()


async def test_allowed_hosts_get_redirects_but_never_credentials(server: Server, other_host: Server) -> None:
    executor = make(
        {
            "url": base(server) + "/redirect?to={{ args.to }}&status={{ args.status }}",
            "method": "GET",
            "headers": {**SECRET_HEADERS, "X-Trace": "t-1"},
            "allowed_hosts": [f"127.0.0.2:{other_host.server_address[1]}"],
        }
    )
    result = await executor.call("h", {"to": other_base(other_host) + "/landing", "status": 307}, run_id="r")
    assert not result.is_error, result.error
    seen = result.output
    assert seen["path"] == "/landing"
    assert "authorization" not in seen["headers"] and "x-api-key" not in seen["headers"]
    assert seen["headers"]["x-trace"] == "t-1"
    await executor.aclose()


async def test_a_body_built_from_credentials_is_never_re_sent_to_another_host(
    server: Server, other_host: Server
) -> None:
    executor = make(
        {
            "url": base(server) + "/redirect?to={{ args.to }}&status=307",
            "body": {"token": "{{ env.API_TOKEN }}"},
            "allowed_hosts": [f"127.0.0.2:{other_host.server_address[1]}"],
        }
    )
    before = len(other_host.requests)
    result = await executor.call("h", {"to": other_base(other_host) + "/landing"}, run_id="r")
    assert isinstance(result.error, ToolFailed) and "environment variables" in result.error.message
    assert len(other_host.requests) == before
    await executor.aclose()


async def test_redirects_within_the_declared_host_keep_credentials(server: Server) -> None:
    executor = make(
        {"url": base(server) + "/redirect?to={{ args.to }}", "method": "GET", "headers": SECRET_HEADERS}
    )
    result = await executor.call("h", {"to": "/echo-after-redirect"}, run_id="r")
    assert not result.is_error, result.error
    assert result.output["path"] == "/echo-after-redirect"
    assert result.output["headers"]["authorization"] == "Bearer s3cret"
    loop = await executor.call("h", {"to": redirect_to(server, redirect_to(server, "/x"))}, run_id="r")
    assert not loop.is_error  # two hops are fine
    await executor.aclose()


async def test_endless_redirects_stop(server: Server) -> None:
    executor = make({"url": base(server) + "/loop", "method": "GET"})
    before = server.hits.get("/loop", 0)
    result = await executor.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and "redirects" in result.error.message
    assert server.hits["/loop"] - before == 6  # the request and five redirects
    await executor.aclose()


async def test_http_templates_render_in_the_bounded_sandbox(server: Server) -> None:
    executor = make({"url": base(server) + "/echo", "body": {"text": "{{ 'a' * 10**9 }}"}})
    result = await executor.call("h", {}, run_id="r")
    assert isinstance(result.error, ToolUnavailable), result
    assert "spec.http.body.text" in result.error.message and "limit" in result.error.message
    await executor.aclose()


async def test_http_templates_read_keys_before_attributes_and_are_strict(server: Server) -> None:
    # The same environment as every other spec template: `args.items` is the argument named
    # `items`, not the dict method, in the url, the headers, the query and the body alike.
    names = {"type": "object", "properties": {n: {"type": "string"} for n in ("items", "keys", "values")}}
    executor = make(
        {
            "url": base(server) + "/echo/{{ args.items }}",
            "method": "POST",
            "headers": {"X-Keys": "{{ args.keys }}"},
            "query": {"v": "{{ args.values }}"},
            "body": {"got": "{{ args.items }}-{{ args.keys }}"},
        },
        input_schema=names,
    )
    result = await executor.call("h", {"items": "a/b", "keys": "k", "values": "v"}, run_id="r")
    assert result.error is None, result
    seen = result.output
    assert seen["raw_path"].startswith("/echo/a%2Fb?")
    assert seen["headers"]["x-keys"] == "k"
    assert seen["query"] == {"v": "v"}
    assert json.loads(seen["body"]) == {"got": "a/b-k"}
    await executor.aclose()

    strict = make({"url": base(server) + "/echo/{{ args.missing }}"})
    refused = await strict.call("h", {}, run_id="r")
    assert isinstance(refused.error, ToolUnavailable), refused
    assert "'dict object' has no attribute 'missing'" in refused.error.message
    await strict.aclose()
