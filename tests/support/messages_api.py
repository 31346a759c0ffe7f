"""A real local HTTP server speaking the Anthropic Messages API, for driving the real `anthropic`
SDK (and instructor on top of it) in tests without monkeypatching anything.

It binds 127.0.0.1 on an ephemeral port, runs in a background thread (stdlib
`ThreadingHTTPServer`), records every request, and answers `POST /v1/messages` from a queue of
replies the test pushes::

    with MessagesAPIServer() as server:
        server.push(tool_use({"answer": 42}, input_tokens=120, output_tokens=30))
        server.push(rate_limited(retry_after=0.05), overloaded(), server_error())
        ...  # point the SDK at server.url with api_key=server.api_key
        server.requests[0].body["tool_choice"]

Replies match the real API's JSON shapes: a message is `{id, type: "message", role: "assistant",
model, content: [...], stop_reason, stop_sequence, usage: {input_tokens, output_tokens, ...}}`; an
error is `{"type": "error", "error": {"type": ..., "message": ...}}` with the API's status codes
(400 invalid_request_error, 401 authentication_error, 429 rate_limit_error, 500 api_error,
529 overloaded_error). A `tool_use` reply names the tool the request forces (`tool_choice.name`,
else the first of `tools`), as the real API would.

Authentication: the request must carry the server's key as `x-api-key` or as
`Authorization: Bearer <key>` (SDK versions differ in which they send); otherwise the server
answers 401 without consuming a queued reply. A request the real API would refuse (see
`strict_shapes.py`) is answered 400 `invalid_request_error`, also without consuming one. With an empty queue it answers 500 with a message
saying so, which makes a test that under-scripts fail loudly. `base_path` lets a subclass serve
another API (see `openai_api.py`).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

JsonBuilder = Callable[[dict[str, Any], "FakeAPIServer"], Any]


@dataclass
class Reply:
    """One scripted reply. `build` computes the JSON body from the request body (e.g. to echo the
    forced tool name); `raw` is sent verbatim instead (for malformed bodies)."""

    status: int = 200
    build: JsonBuilder | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (client timeouts)
    content_type: str = "application/json"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when the body was not JSON
    raw: bytes
    reply_status: int = 0


class FakeAPIServer:
    """A threaded local HTTP server answering from a queue of `Reply`s (the API-agnostic part)."""

    base_path = "/v1/messages"

    def __init__(self, api_key: str = "sk-test-0123456789abcdef") -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # do not join handler threads still sleeping in a delay
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- scripting ----------------------------------------------------------------------------

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        """Forget recorded requests and queued replies (between tests sharing one server)."""
        with self._lock:
            self.requests.clear()
            self._replies.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):04d}"

    # --- API-specific hooks (overridden by subclasses) ----------------------------------------

    def authorised(self, headers: dict[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        return headers.get("x-api-key") == self.api_key or bearer == f"Bearer {self.api_key}"

    def error_body(self, status: int, error_type: str, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error_type, "message": message}}

    def request_problem(self, body: Any) -> str | None:
        """What the real API would refuse in this request body (answered 400, no reply used)."""
        return None

    # --- request handling (runs in server threads) --------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[Reply, bytes]:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(method, path, headers, body, raw)
        with self._lock:
            self.requests.append(record)
            reply: Reply | None = None
            if path.split("?")[0] != self.base_path or method != "POST":
                reply = json_reply(404, self.error_body(404, "not_found_error", f"no route {method} {path}"))
            elif not self.authorised(headers):
                reply = json_reply(401, self.error_body(401, "authentication_error", "invalid x-api-key"))
            elif (problem := self.request_problem(body)) is not None:
                reply = json_reply(400, self.error_body(400, "invalid_request_error", problem))
            elif self._replies:
                reply = self._replies.popleft()
            else:
                reply = json_reply(
                    500, self.error_body(500, "api_error", "test server: no scripted reply left")
                )
        record.reply_status = reply.status
        if reply.raw is not None:
            payload = reply.raw
        elif reply.build is not None:
            payload = json.dumps(reply.build(body if isinstance(body, dict) else {}, self)).encode()
        else:
            payload = b""
        return reply, payload


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, build=lambda _req, _srv: body, headers=dict(headers or {}))


def _make_handler(server: FakeAPIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply, payload = server.handle(self.command, self.path, headers, raw)
            if reply.delay and server._stopping.wait(reply.delay):
                return
            try:
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(payload)))
                self.send_header("request-id", server.next_id("req"))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
                self.close_connection = True

        do_POST = _serve
        do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output clean

    return Handler


# --- the Messages API ---------------------------------------------------------------------------


class MessagesAPIServer(FakeAPIServer):
    """`POST /v1/messages`; point the SDK at `base_url=server.url`. Requests are validated as
    strictly as the real API does (tests/support/strict_shapes.py)."""

    base_path = "/v1/messages"

    def request_problem(self, body: Any) -> str | None:
        from tests.support.strict_shapes import messages_problem

        return messages_problem(body)


def forced_tool_name(request: dict[str, Any]) -> str:
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name"):
        return str(choice["name"])
    tools = request.get("tools") or []
    return str(tools[0]["name"]) if tools else "unknown_tool"


def _message(
    request: dict[str, Any],
    server: FakeAPIServer,
    content: list[dict[str, Any]],
    stop_reason: str,
    input_tokens: int,
    output_tokens: int,
    cache_written: int = 0,
    cache_read: int = 0,
) -> dict[str, Any]:
    return {
        "id": server.next_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "unknown"),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_written,
            "cache_read_input_tokens": cache_read,
            "service_tier": "standard",
        },
    }


def tool_use(
    tool_input: dict[str, Any],
    *,
    input_tokens: int = 10,
    output_tokens: int = 5,
    name: str | None = None,
    text: str | None = None,
    stop_reason: str = "tool_use",
    delay: float = 0.0,
    cache_written: int = 0,
    cache_read: int = 0,
) -> Reply:
    """A `tool_use` answer for the tool the request forces (or `name`), with `tool_input`. The
    usage is as the API reports it: `input_tokens` excludes the tokens written to or read from the
    prompt cache (`cache_written`, `cache_read`)."""

    def build(request: dict[str, Any], server: FakeAPIServer) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if text is not None:
            content.append({"type": "text", "text": text})
        content.append(
            {
                "type": "tool_use",
                "id": server.next_id("toolu"),
                "name": name or forced_tool_name(request),
                "input": tool_input,
            }
        )
        return _message(
            request, server, content, stop_reason, input_tokens, output_tokens, cache_written, cache_read
        )

    return Reply(build=build, delay=delay)


def text_answer(text: str, *, input_tokens: int = 10, output_tokens: int = 5) -> Reply:
    """A plain text answer (no tool call), stop_reason `end_turn`."""

    def build(request: dict[str, Any], server: FakeAPIServer) -> dict[str, Any]:
        content = [{"type": "text", "text": text}]
        return _message(request, server, content, "end_turn", input_tokens, output_tokens)

    return Reply(build=build)


def api_error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return json_reply(status, body, headers)


def rate_limited(retry_after: float | None = None, message: str = "Number of requests exceeded") -> Reply:
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return api_error(429, "rate_limit_error", message, headers)


def overloaded() -> Reply:
    return api_error(529, "overloaded_error", "Overloaded")


def server_error() -> Reply:
    return api_error(500, "api_error", "Internal server error")


def unauthorized() -> Reply:
    return api_error(401, "authentication_error", "invalid x-api-key")


def bad_request(message: str = "messages: roles must alternate") -> Reply:
    return api_error(400, "invalid_request_error", message)


def malformed(raw: bytes = b'{"id": "msg_x", "type": "message", "content": [') -> Reply:
    """A 200 whose body is not valid JSON (a broken proxy, a truncated response)."""
    return Reply(status=200, raw=raw)


def delayed(seconds: float, reply: Reply) -> Reply:
    """`reply`, sent after `seconds` (for client timeouts; interrupted when the server stops)."""
    reply.delay = seconds
    return reply


@contextmanager
def serve_messages_api(api_key: str = "sk-test-0123456789abcdef") -> Iterator[MessagesAPIServer]:
    server = MessagesAPIServer(api_key)
    with server:
        yield server
