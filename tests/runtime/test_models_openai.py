"""The OpenAI-compatible provider, driven through the real `openai` SDK and instructor over HTTP
against a local chat-completions server (tests/support/openai_api.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field
from tests.support.openai_api import (
    ChatCompletionsServer,
    content_answer,
    openai_error,
    tool_call,
)

from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models import (
    ModelAuthError,
    ModelConfigError,
    ModelError,
    ModelOutputInvalid,
    ModelOverloaded,
    ModelRequest,
    ModelResult,
    Usage,
    create_provider,
)
from agent_platform._runtime.models.openai_provider import (
    OpenAIProvider,
    StructuredMode,
    max_tokens_parameter,
    to_openai_messages,
)
from agent_platform._runtime.tokens import estimate_tokens, message_tokens
from agent_platform._spec.kinds import ModelSpec

KEY_ENV = "AP_TEST_OPENAI_KEY"
SECRET = "sk-openai-test-SECRET-51c0ffee"


class Extraction(BaseModel):
    """Facts extracted from the text."""

    title: str
    year: int = Field(ge=1900, le=2100)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer(api_key=SECRET) as server:
        yield server


@pytest.fixture
def server(shared_server: ChatCompletionsServer, monkeypatch: pytest.MonkeyPatch) -> ChatCompletionsServer:
    shared_server.reset()
    shared_server.api_key = SECRET
    monkeypatch.setenv(KEY_ENV, SECRET)
    return shared_server


def make_spec(server: ChatCompletionsServer, **overrides: Any) -> ModelSpec:
    data: dict[str, Any] = {
        "provider": "openai",
        "name": "gemma-3-270m",
        "api_key_env": KEY_ENV,
        "base_url": f"{server.url}/v1",
        "timeout": 5.0,
        "max_tokens": 256,
        "retry": {"max_attempts": 3, "backoff": {"initial": 0.01, "max": 0.2, "jitter": "none"}},
        "pricing": {"input_per_mtok": 0.5, "output_per_mtok": 1.5},
    }
    data.update(overrides)
    return ModelSpec.model_validate(data)


def request(messages: list[Message] | None = None, **kwargs: Any) -> ModelRequest[Extraction]:
    return ModelRequest(
        system="Extract facts.",
        messages=messages or [Message.user("Dune was published in 1965.")],
        response_model=Extraction,
        key="extract",
        **kwargs,
    )


class NoSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def complete(
    spec: ModelSpec,
    req: ModelRequest[Extraction],
    sleep: NoSleep | None = None,
    mode: StructuredMode = "tools",
) -> ModelResult[Extraction]:
    async def go() -> ModelResult[Extraction]:
        provider = OpenAIProvider(spec, sleep=sleep, mode=mode)
        try:
            return await provider.complete(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def failure(spec: ModelSpec, req: ModelRequest[Extraction], sleep: NoSleep | None = None) -> ModelError:
    with pytest.raises(ModelError) as info:
        complete(spec, req, sleep)
    assert SECRET not in "".join(traceback.format_exception(info.value)) + repr(info.value)
    return info.value


def test_structured_output_with_usage_cost_and_request_shape(server: ChatCompletionsServer) -> None:
    conversation = [
        Message.user("Find the book."),
        Message("assistant", [TextBlock("Searching."), ToolUseBlock("call_prev", "search", {"q": "dune"})]),
        Message("user", [ToolResultBlock("call_prev", "Dune (1965)"), TextBlock("Now extract.")]),
    ]
    server.push(tool_call({"title": "Dune", "year": 1965}, prompt_tokens=300, completion_tokens=25))
    result = complete(make_spec(server), request(conversation))
    assert result.output == Extraction(title="Dune", year=1965)
    assert result.usage == Usage(300, 25)
    assert result.cost_usd == pytest.approx((300 * 0.5 + 25 * 1.5) / 1e6)
    assert result.provider == "openai" and result.model == "gemma-3-270m"
    assert result.response_id is not None and result.response_id.startswith("call_")
    (sent,) = server.requests
    body = sent.body
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert body["model"] == "gemma-3-270m"
    assert body["max_tokens"] == 256  # not OpenAI itself: the widely understood name
    assert body["messages"] == to_openai_messages("Extract facts.", conversation)
    assert body["messages"][0] == {"role": "system", "content": "Extract facts."}
    (tool,) = body["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "Extraction"
    assert tool["function"]["parameters"]["properties"]["year"]["maximum"] == 2100
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Extraction"}}


def test_messages_api_blocks_become_tool_calls_and_tool_messages() -> None:
    conversation = [
        Message.user("Find the book."),
        Message("assistant", [TextBlock("Searching."), ToolUseBlock("call_1", "search", {"q": "dune"})]),
        Message("user", [ToolResultBlock("call_1", "Dune (1965)"), TextBlock("Now extract.")]),
        Message("assistant", [ToolUseBlock("call_2", "fetch", {"url": "x"})]),
        Message("user", [ToolResultBlock("call_2", "404", is_error=True)]),
    ]
    assert to_openai_messages("", conversation) == [
        {"role": "user", "content": "Find the book."},
        {
            "role": "assistant",
            "content": "Searching.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search", "arguments": '{"q": "dune"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Dune (1965)"},
        {"role": "user", "content": "Now extract."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "fetch", "arguments": '{"url": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "[error] 404"},
    ]


def test_validation_error_is_reasked_then_exhausted(server: ChatCompletionsServer) -> None:
    server.push(
        tool_call({"title": "Dune", "year": 65}, prompt_tokens=10, completion_tokens=3),
        tool_call({"title": "Dune", "year": 1965}, prompt_tokens=20, completion_tokens=4),
    )
    result = complete(make_spec(server), request())
    assert result.output.year == 1965 and result.attempts == 2 and result.usage == Usage(30, 7)
    reask = server.requests[1].body["messages"]
    assert reask[-2]["role"] == "assistant" and reask[-2]["tool_calls"]
    assert reask[-1]["role"] == "tool" and "greater than or equal to 1900" in reask[-1]["content"]

    server.reset()
    server.push(tool_call({"title": "Dune", "year": 65}), tool_call('{"title": "Dune"'))
    error = failure(make_spec(server), request(max_validation_retries=1))
    assert isinstance(error, ModelOutputInvalid) and "Extraction" in str(error)


def test_rate_limit_retry_after_then_success(server: ChatCompletionsServer) -> None:
    sleep = NoSleep()
    server.push(
        openai_error(429, "rate_limit_exceeded", "slow down", {"retry-after": "0.1"}),
        tool_call({"title": "Dune", "year": 1965}),
    )
    assert complete(make_spec(server), request(), sleep).attempts == 2
    assert sleep.calls == [pytest.approx(0.1)]


def test_busy_local_server_is_overloaded_and_401_is_auth(server: ChatCompletionsServer) -> None:
    server.push(*[openai_error(503, "server_busy", "busy")] * 3)
    assert isinstance(failure(make_spec(server), request(), NoSleep()), ModelOverloaded)
    assert len(server.requests) == 3
    server.reset()
    server.push(openai_error(401, "invalid_api_key", f"Incorrect API key provided: {SECRET}"))
    error = failure(make_spec(server), request(), NoSleep())
    assert isinstance(error, ModelAuthError) and len(server.requests) == 1


@pytest.mark.parametrize("key", [SECRET, "vllm-served-credential-0042"], ids=["key-shaped", "any-shape"])
def test_an_echoed_key_never_reaches_the_logs(
    server: ChatCompletionsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    server.api_key = key
    monkeypatch.setenv(KEY_ENV, key)
    # Every record of every logger, DEBUG included: the key is hidden by redaction, not by level.
    caplog.set_level(logging.DEBUG)
    server.push(
        openai_error(500, "server_error", f"upstream saw {key}"),
        openai_error(401, "invalid_api_key", f"Incorrect API key provided: {key}"),
    )
    with pytest.raises(ModelAuthError) as info:
        complete(make_spec(server), request(), NoSleep())
    assert key not in str(info.value)
    assert "Incorrect API key provided: ***" in caplog.text, "instructor's lines are kept, redacted"
    assert key not in caplog.text


def test_a_retried_call_that_succeeds_logs_no_warning(
    server: ChatCompletionsServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.push(openai_error(500, "server_error", "try again"), tool_call({"title": "Dune", "year": 1965}))
    with caplog.at_level(logging.WARNING):
        result = complete(make_spec(server), request(), NoSleep())
    assert result.output.year == 1965
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_missing_usage_is_estimated(server: ChatCompletionsServer) -> None:
    server.push(tool_call({"title": "Dune", "year": 1965}, prompt_tokens=None, completion_tokens=None))
    result = complete(make_spec(server), request())
    req = request()
    expected_in = estimate_tokens(req.system) + sum(message_tokens(m) for m in req.messages)
    assert result.usage == Usage(expected_in, estimate_tokens(result.output.model_dump_json()))


def test_json_schema_mode(server: ChatCompletionsServer) -> None:
    server.push(content_answer(json.dumps({"title": "Dune", "year": 1965})))
    result = complete(make_spec(server), request(), mode="json_schema")
    assert result.output.title == "Dune"
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema" and "tools" not in body


def test_local_server_needs_no_key(server: ChatCompletionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.api_key = "not-needed"
    server.push(tool_call({"title": "Dune", "year": 1965}))
    spec = ModelSpec.model_validate(
        {"provider": "openai", "name": "local", "base_url": f"{server.url}/v1", "retry": {"max_attempts": 1}}
    )
    assert complete(spec, request()).output.year == 1965


def test_remote_server_without_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = ModelSpec.model_validate({"provider": "openai", "name": "gpt-x"})
    with pytest.raises(ModelConfigError, match="OPENAI_API_KEY"):
        create_provider(spec)
    named = ModelSpec.model_validate(
        {"provider": "openai", "name": "local", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "AP_NOPE"}
    )
    with pytest.raises(ModelConfigError, match="AP_NOPE"):  # a named variable is always required
        create_provider(named)


def test_official_api_gets_max_completion_tokens() -> None:
    assert max_tokens_parameter(None) == "max_completion_tokens"
    assert max_tokens_parameter("https://api.openai.com/v1") == "max_completion_tokens"
    assert max_tokens_parameter("http://127.0.0.1:8080/v1") == "max_tokens"
    assert max_tokens_parameter("https://vllm.internal/v1") == "max_tokens"


def test_the_model_spec_chooses_the_structured_output_mode(server: ChatCompletionsServer) -> None:
    """A schema too large for a local server's grammar needs another mode: the spec says which."""
    for mode, check in (
        ("json", lambda body: body["response_format"]["type"] == "json_object" and "tools" not in body),
        ("json_schema", lambda body: body["response_format"]["type"] == "json_schema"),
        ("tools", lambda body: body["tools"] and "response_format" not in body),
    ):
        server.reset()
        reply = (
            tool_call({"title": "Dune", "year": 1965})
            if mode == "tools"
            else content_answer(json.dumps({"title": "Dune", "year": 1965}))
        )
        server.push(reply)
        spec = make_spec(server, structured_output=mode)

        async def go(spec: ModelSpec = spec) -> ModelResult[Extraction]:
            provider = create_provider(spec)
            try:
                return await provider.complete(request())
            finally:
                await provider.aclose()

        assert asyncio.run(go()).output.year == 1965
        assert check(server.requests[0].body), (mode, server.requests[0].body)


def test_max_reasks_comes_from_the_model_spec(server: ChatCompletionsServer) -> None:
    invalid = {"title": "Dune", "year": 65}
    server.push(*(tool_call(invalid, prompt_tokens=10, completion_tokens=3) for _ in range(5)))
    error = failure(make_spec(server, max_reasks=3), request())
    assert isinstance(error, ModelOutputInvalid)
    assert len(server.requests) == 4, "the first answer and 3 re-asks"
    server.reset()
    server.push(tool_call(invalid))
    error = failure(make_spec(server, max_reasks=0), request())
    assert isinstance(error, ModelOutputInvalid) and len(server.requests) == 1


def test_retry_after_is_honoured_beyond_the_backoff_up_to_the_declared_ceiling(
    server: ChatCompletionsServer,
) -> None:
    """Retrying before the server said it would take the call only fails again: a hint longer
    than `backoff.max` (0.2 s here) is waited in full, up to `max_retry_after`."""
    sleep = NoSleep()
    server.push(
        openai_error(429, "rate_limit_exceeded", "slow down", {"retry-after": "30"}),
        tool_call({"title": "Dune", "year": 1965}),
    )
    assert complete(make_spec(server), request(), sleep).attempts == 2
    assert sleep.calls == [pytest.approx(30)]
    server.reset()
    sleep = NoSleep()
    server.push(
        openai_error(429, "rate_limit_exceeded", "slow down", {"retry-after": "600"}),
        tool_call({"title": "Dune", "year": 1965}),
    )
    assert complete(make_spec(server, max_retry_after=5.0), request(), sleep).attempts == 2
    assert sleep.calls == [pytest.approx(5.0)]


def test_anthropic_takes_only_the_tools_mode() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="structured_output: tools"):
        ModelSpec.model_validate({"provider": "anthropic", "name": "claude", "structured_output": "json"})
