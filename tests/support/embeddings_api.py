"""A real local HTTP server speaking OpenAI's embeddings API (`POST /v1/embeddings`), for driving
`OpenAIEmbedder` (httpx, tenacity) in tests without monkeypatching anything. Same machinery as
`messages_api.py`: 127.0.0.1, ephemeral port, background thread, every request recorded.

Unlike the chat servers it needs no script: it answers every request with deterministic vectors
computed from the text (a hashed bag of words: each lower-cased word adds +1 or -1 to one of
`dimensions` coordinates, so texts sharing words are similar, and equal texts get equal vectors;
the vectors are *not* normalised, as real servers' need not be). Tests steer it with::

    with serve_embeddings(dimensions=64, api_key="sk-emb-test") as server:
        server.fail_next(2, status=429)          # the next two requests get 429, then it recovers
        server.fail_next(1, status=400, message="input too long")
        server.delay_next(1, seconds=2.0)        # the next request is answered after 2 s
        server.shuffle = True                    # data[] in reverse order (clients sort by index)
        server.model_dimensions["big-model"] = 768
        ...  # point the client at server.base_url (".../v1")
        len(server.embedding_requests)           # batches that reached the model

Shapes match the real API: `{"object": "list", "data": [{"object": "embedding", "index": i,
"embedding": [...]}], "model", "usage": {"prompt_tokens", "total_tokens"}}`; errors are
`{"error": {"message", "type", "param", "code"}}`. A request's `dimensions` field is honoured
(as OpenAI does for text-embedding-3 models). With `api_key` set, requests must carry
`Authorization: Bearer <key>` (401 otherwise, before any scripted failure is consumed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.messages_api import FakeAPIServer, RecordedRequest, Reply, json_reply

_WORD = re.compile(r"\w+")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def hashed_vector(text: str, dimensions: int) -> list[float]:
    """The server's embedding of `text`: a signed hashed bag of its lower-cased words (the whole
    text's hash for a text without words, so no vector is all zeros)."""
    vector = [0.0] * dimensions
    tokens = _WORD.findall(text.lower()) or [text]
    for token in tokens:
        digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "big") % dimensions
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    if not any(vector):  # words cancelled out
        vector[0] = 1.0
    return [value * 3.0 for value in vector]  # not unit length: the client must normalise


def openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    error_type = _ERROR_TYPES.get(status, "server_error")
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return json_reply(status, body, headers)


class EmbeddingsServer(FakeAPIServer):
    """`POST /v1/embeddings`; see the module docstring."""

    base_path = "/v1/embeddings"

    def __init__(self, api_key: str | None = None, dimensions: int = 64) -> None:
        super().__init__(api_key or "")
        self.require_key = api_key is not None
        self.dimensions = dimensions
        self.model_dimensions: dict[str, int] = {}  # per-model override of `dimensions`
        self.shuffle = False
        self._failures: deque[Reply] = deque()
        self._delays: deque[float] = deque()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # --- steering -------------------------------------------------------------------------------

    def fail_next(
        self, count: int, *, status: int = 500, message: str | None = None, retry_after: float | None = None
    ) -> None:
        """The next `count` authorised requests fail with `status` (and a `retry-after` header)."""
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        text = message or f"test server: scripted failure {status}"
        with self._lock:
            self._failures.extend(openai_error(status, text, headers) for _ in range(count))

    def delay_next(self, count: int, *, seconds: float) -> None:
        """The next `count` requests are answered after `seconds` (client timeouts)."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self.shuffle = False
            self.model_dimensions.clear()

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """The requests answered with embeddings (status 200), in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.reply_status == 200]

    # --- serving (server threads) --------------------------------------------------------------

    def authorised(self, headers: dict[str, str]) -> bool:
        return not self.require_key or headers.get("authorization") == f"Bearer {self.api_key}"

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[Reply, bytes]:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(method, path, headers, body, raw)
        with self._lock:
            self.requests.append(record)
            delay = self._delays.popleft() if self._delays else 0.0
            if path.split("?")[0] != self.base_path or method != "POST":
                reply = openai_error(404, f"no route {method} {path}")
            elif not self.authorised(headers):
                reply = openai_error(
                    401, "Incorrect API key provided. You can find your API key in your account."
                )
            elif self._failures:
                reply = self._failures.popleft()
            else:
                reply = self._answer(body)
        reply.delay = delay
        record.reply_status = reply.status
        assert reply.build is not None
        payload = json.dumps(reply.build(body if isinstance(body, dict) else {}, self)).encode()
        return reply, payload

    def _answer(self, body: Any) -> Reply:
        if not isinstance(body, dict) or "input" not in body or "model" not in body:
            return openai_error(400, "the body must be a JSON object with `model` and `input`")
        model, inputs = body["model"], body["input"]
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            return openai_error(400, "'$.input' is invalid: expected a string or a non-empty list of strings")
        if any(text == "" for text in inputs):
            return openai_error(400, "'$.input' is invalid: empty strings are not allowed")
        dimensions = body.get("dimensions") or self.model_dimensions.get(model, self.dimensions)
        data = [
            {"object": "embedding", "index": index, "embedding": hashed_vector(text, dimensions)}
            for index, text in enumerate(inputs)
        ]
        if self.shuffle:
            data.reverse()
        tokens = sum(len(_WORD.findall(text)) or 1 for text in inputs)
        answer = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return json_reply(200, answer)


@contextmanager
def serve_embeddings(*, api_key: str | None = None, dimensions: int = 64) -> Iterator[EmbeddingsServer]:
    server = EmbeddingsServer(api_key, dimensions)
    with server:
        yield server
