"""A real local HTTP server speaking OpenAI's chat-completions API (`POST /v1/chat/completions`),
for driving the real `openai` SDK and instructor in tests. Same machinery as `messages_api.py`:
127.0.0.1, ephemeral port, background thread, recorded requests, a queue of pushed replies.

Point the SDK at `base_url=server.url + "/v1"`. Replies match the real shapes: a completion is
`{id, object: "chat.completion", created, model, choices: [{index, message: {role, content,
tool_calls: [{id, type: "function", function: {name, arguments}}]}, finish_reason}], usage:
{prompt_tokens, completion_tokens, total_tokens}}`; an error is `{"error": {"message", "type",
"param", "code"}}`. Auth: `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.messages_api import FakeAPIServer, Reply, json_reply


class ChatCompletionsServer(FakeAPIServer):
    base_path = "/v1/chat/completions"

    def authorised(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def error_body(self, status: int, error_type: str, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": error_type, "param": None, "code": None}}

    def request_problem(self, body: Any) -> str | None:
        from tests.support.strict_shapes import chat_completions_problem

        return chat_completions_problem(body)


def forced_function_name(request: dict[str, Any]) -> str:
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return str(choice["function"]["name"])
    tools = request.get("tools") or []
    return str(tools[0]["function"]["name"]) if tools else "unknown_function"


def _completion(
    request: dict[str, Any],
    server: FakeAPIServer,
    message: dict[str, Any],
    finish_reason: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": server.next_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "unknown"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if prompt_tokens is not None and completion_tokens is not None:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def tool_call(
    arguments: dict[str, Any] | str,
    *,
    prompt_tokens: int | None = 10,
    completion_tokens: int | None = 5,
    name: str | None = None,
    finish_reason: str = "tool_calls",
) -> Reply:
    """An assistant message calling the forced function with `arguments` (a dict, or raw text)."""

    def build(request: dict[str, Any], server: FakeAPIServer) -> dict[str, Any]:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": server.next_id("call"),
                    "type": "function",
                    "function": {"name": name or forced_function_name(request), "arguments": args},
                }
            ],
        }
        return _completion(request, server, message, finish_reason, prompt_tokens, completion_tokens)

    return Reply(build=build)


def content_answer(text: str, *, prompt_tokens: int = 10, completion_tokens: int = 5) -> Reply:
    """A plain assistant message (JSON modes put the answer here)."""

    def build(request: dict[str, Any], server: FakeAPIServer) -> dict[str, Any]:
        message = {"role": "assistant", "content": text}
        return _completion(request, server, message, "stop", prompt_tokens, completion_tokens)

    return Reply(build=build)


def openai_error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return json_reply(status, body, headers)


@contextmanager
def serve_chat_completions(api_key: str = "sk-test-openai-0123456789") -> Iterator[ChatCompletionsServer]:
    server = ChatCompletionsServer(api_key)
    with server:
        yield server
