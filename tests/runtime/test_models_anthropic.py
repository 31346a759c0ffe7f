"""The Anthropic provider, driven through the real `anthropic` SDK and instructor over HTTP against
a local Messages API server (tests/support/messages_api.py). Nothing in the SDK is patched."""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
import traceback
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from tests.support.messages_api import (
    MessagesAPIServer,
    api_error,
    bad_request,
    delayed,
    malformed,
    overloaded,
    rate_limited,
    server_error,
    tool_use,
    unauthorized,
)

from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models import (
    ModelAuthError,
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelOutputInvalid,
    ModelOverloaded,
    ModelRateLimited,
    ModelRequest,
    ModelRequestError,
    ModelResult,
    ModelServerError,
    ModelTimeout,
    Usage,
    create_provider,
)
from agent_platform._runtime.models.anthropic_provider import AnthropicProvider
from agent_platform._spec.kinds import ModelSpec

KEY_ENV = "AP_TEST_ANTHROPIC_KEY"
SECRET = "sk-ant-test-SECRET-7f3a9c1e5b2d"


class Verdict(BaseModel):
    """A verdict on the claim."""

    label: Literal["true", "false", "unclear"]
    confidence: int = Field(ge=0, le=10)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[MessagesAPIServer]:
    with MessagesAPIServer(api_key=SECRET) as server:
        yield server


@pytest.fixture
def server(shared_server: MessagesAPIServer, monkeypatch: pytest.MonkeyPatch) -> MessagesAPIServer:
    shared_server.reset()
    monkeypatch.setenv(KEY_ENV, SECRET)
    return shared_server


def make_spec(server: MessagesAPIServer, **overrides: Any) -> ModelSpec:
    data: dict[str, Any] = {
        "provider": "anthropic",
        "name": "claude-test",
        "api_key_env": KEY_ENV,
        "base_url": server.url,
        "timeout": 5.0,
        "max_tokens": 1024,
        "retry": {"max_attempts": 3, "backoff": {"initial": 0.01, "max": 0.2, "jitter": "none"}},
        "pricing": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ModelSpec.model_validate(data)


def request(messages: list[Message] | None = None, **kwargs: Any) -> ModelRequest[Verdict]:
    return ModelRequest(
        system="You judge claims.",
        messages=messages or [Message.user("Is the sky green?")],
        response_model=Verdict,
        key="judge",
        **kwargs,
    )


class NoSleep:
    """Records retry delays without waiting (the delays themselves are what is under test)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def complete(
    spec: ModelSpec, req: ModelRequest[Verdict], sleep: NoSleep | None = None
) -> ModelResult[Verdict]:
    async def go() -> ModelResult[Verdict]:
        provider = AnthropicProvider(spec, sleep=sleep)
        try:
            return await provider.complete(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def failure(spec: ModelSpec, req: ModelRequest[Verdict], sleep: NoSleep | None = None) -> ModelError:
    with pytest.raises(ModelError) as info:
        complete(spec, req, sleep)
    assert_no_secret(info.value)
    return info.value


def assert_no_secret(exc: BaseException) -> None:
    shown = "".join(traceback.format_exception(exc)) + str(exc) + repr(exc)
    cause = exc.__cause__
    while cause is not None:
        shown += str(cause) + repr(cause)
        cause = cause.__cause__
    assert SECRET not in shown


# --- success ------------------------------------------------------------------------------------


def test_structured_output_with_exact_usage_and_cost(server: MessagesAPIServer) -> None:
    server.push(tool_use({"label": "false", "confidence": 9}, input_tokens=1200, output_tokens=340))
    result = complete(make_spec(server), request())
    assert result.output == Verdict(label="false", confidence=9)
    # exactly the response model (instructor validates with a generated subclass and attaches the
    # raw completion): comparable, picklable for Ray, and not holding the raw response alive
    assert type(result.output) is Verdict and set(result.output.__dict__) == {"label", "confidence"}
    assert pickle.loads(pickle.dumps(result.output)) == result.output
    assert result.usage == Usage(1200, 340)
    assert result.cost_usd == pytest.approx((1200 * 3.0 + 340 * 15.0) / 1_000_000)
    assert result.provider == "anthropic" and result.model == "claude-test"
    assert result.attempts == 1
    assert result.response_id is not None and result.response_id.startswith("toolu_")


def test_request_body_has_system_blocks_tools_and_forced_tool_choice(server: MessagesAPIServer) -> None:
    conversation = [
        Message.user("Is the sky green?"),
        Message(
            "assistant",
            [TextBlock("Let me look."), ToolUseBlock("toolu_prev_1", "web-search", {"query": "sky colour"})],
        ),
        Message(
            "user", [ToolResultBlock("toolu_prev_1", "The sky is blue.", is_error=True), TextBlock("Decide.")]
        ),
    ]
    server.push(tool_use({"label": "false", "confidence": 8}))
    complete(make_spec(server, temperature=0.2), request(conversation))
    (sent,) = server.requests
    body = sent.body
    assert sent.path == "/v1/messages"
    assert sent.headers.get("x-api-key") == SECRET or sent.headers.get("authorization") == f"Bearer {SECRET}"
    assert body["model"] == "claude-test"
    assert body["system"] == [
        {"type": "text", "text": "You judge claims.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["max_tokens"] == 1024
    assert body["temperature"] == 0.2
    assert body["messages"] == [m.to_api() for m in conversation]
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_prev_1",
        "name": "web-search",
        "input": {"query": "sky colour"},
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["messages"][2]["content"][0]["is_error"] is True
    (tool,) = body["tools"]
    assert tool["name"] == "Verdict"
    assert tool["description"] == "A verdict on the claim."
    assert tool["input_schema"]["properties"]["confidence"]["maximum"] == 10
    assert tool["input_schema"]["required"] == ["label", "confidence"]
    assert body["tool_choice"]["type"] == "tool" and body["tool_choice"]["name"] == "Verdict"


def test_request_overrides_max_tokens_and_temperature(server: MessagesAPIServer) -> None:
    server.push(tool_use({"label": "true", "confidence": 1}))
    complete(make_spec(server), request(max_tokens=77, temperature=0.0))
    body = server.requests[0].body
    assert body["max_tokens"] == 77 and body["temperature"] == 0.0


def test_validation_error_is_reasked_with_the_error_then_succeeds(server: MessagesAPIServer) -> None:
    server.push(
        tool_use({"label": "false", "confidence": 50}, input_tokens=100, output_tokens=20),
        tool_use({"label": "false", "confidence": 5}, input_tokens=180, output_tokens=21),
    )
    result = complete(make_spec(server), request())
    assert result.output.confidence == 5
    assert result.attempts == 2
    assert result.usage == Usage(280, 41)  # both responses, exactly
    assert result.cost_usd == pytest.approx((280 * 3.0 + 41 * 15.0) / 1_000_000)
    first, second = (r.body for r in server.requests)
    assert len(second["messages"]) == len(first["messages"]) + 2
    echoed, reask = second["messages"][-2:]
    assert echoed["role"] == "assistant" and echoed["content"][0]["input"] == {
        "label": "false",
        "confidence": 50,
    }
    assert reask["role"] == "user"
    (block,) = reask["content"]
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert block["tool_use_id"] == echoed["content"][0]["id"]
    assert "less than or equal to 10" in block["content"]


def test_validation_reasks_exhausted_raise_model_output_invalid(server: MessagesAPIServer) -> None:
    server.push(
        tool_use({"label": "maybe", "confidence": 5}, input_tokens=10, output_tokens=2),
        tool_use({"label": "false", "confidence": 99}, input_tokens=20, output_tokens=3),
    )
    error = failure(make_spec(server), request(max_validation_retries=1))
    assert isinstance(error, ModelOutputInvalid)
    assert "Verdict" in str(error) and "2 attempts" in str(error)
    assert "confidence" in str(error)
    assert len(server.requests) == 2  # not retried: `validation` is not in the default retry_on
    assert getattr(error, "usage", None) == Usage(30, 5)


def test_validation_category_retries_the_whole_call(server: MessagesAPIServer) -> None:
    spec = make_spec(server, retry={"retry_on": ["validation"]})
    server.push(tool_use({"label": "false", "confidence": 99}), tool_use({"label": "false", "confidence": 3}))
    result = complete(spec, request(max_validation_retries=0), NoSleep())
    assert result.output.confidence == 3 and result.attempts == 2


# --- transport errors and retries ---------------------------------------------------------------


def test_rate_limit_is_retried_and_retry_after_honoured(server: MessagesAPIServer) -> None:
    sleep = NoSleep()
    server.push(rate_limited(retry_after=0.15), tool_use({"label": "true", "confidence": 7}))
    result = complete(make_spec(server), request(), sleep)
    assert result.output.confidence == 7
    assert result.attempts == 2 and len(server.requests) == 2
    assert sleep.calls == [pytest.approx(0.15)]  # the backoff alone would be 0.01


def test_retry_after_is_honoured_up_to_max_retry_after(server: MessagesAPIServer) -> None:
    """It was capped at `backoff.max` (0.2 s here): a longer hint meant retrying early."""
    sleep = NoSleep()
    server.push(rate_limited(retry_after=30), tool_use({"label": "true", "confidence": 7}))
    complete(make_spec(server), request(), sleep)
    assert sleep.calls == [pytest.approx(30)]
    server.reset()
    sleep = NoSleep()
    server.push(rate_limited(retry_after=900), tool_use({"label": "true", "confidence": 7}))
    complete(make_spec(server, max_retry_after=10.0), request(), sleep)
    assert sleep.calls == [pytest.approx(10)]


def test_rate_limit_when_attempts_run_out(server: MessagesAPIServer) -> None:
    server.push(rate_limited(), rate_limited())
    error = failure(make_spec(server, retry={"max_attempts": 2}), request(), NoSleep())
    assert isinstance(error, ModelRateLimited) and error.retryable
    assert "429" in str(error) and "rate_limit_error" in str(error)


def test_overloaded_is_retried_with_backoff_then_raised(server: MessagesAPIServer) -> None:
    server.push(overloaded(), overloaded(), overloaded())
    started = time.monotonic()
    error = failure(make_spec(server), request())  # real sleeps: 0.01 s, then 0.02 s
    assert isinstance(error, ModelOverloaded)
    assert "529" in str(error) and "overloaded_error" in str(error)
    assert len(server.requests) == 3
    assert time.monotonic() - started >= 0.03


def test_overloaded_then_success(server: MessagesAPIServer) -> None:
    server.push(overloaded(), tool_use({"label": "unclear", "confidence": 0}))
    assert complete(make_spec(server), request(), NoSleep()).output.label == "unclear"


def test_server_error_500(server: MessagesAPIServer) -> None:
    server.push(server_error())
    error = failure(make_spec(server, retry={"max_attempts": 1}), request())
    assert isinstance(error, ModelServerError) and "500" in str(error)


def test_server_error_is_retried_under_its_category(server: MessagesAPIServer) -> None:
    server.push(server_error(), tool_use({"label": "true", "confidence": 2}))
    assert complete(make_spec(server), request(), NoSleep()).attempts == 2


def test_server_error_not_retried_when_not_in_retry_on(server: MessagesAPIServer) -> None:
    server.push(server_error(), tool_use({"label": "true", "confidence": 2}))
    error = failure(make_spec(server, retry={"retry_on": ["rate_limit"]}), request(), NoSleep())
    assert isinstance(error, ModelServerError) and len(server.requests) == 1


def test_unauthorised_is_an_auth_error_and_not_retried(server: MessagesAPIServer) -> None:
    server.push(unauthorized())
    error = failure(make_spec(server), request(), NoSleep())
    assert isinstance(error, ModelAuthError) and not error.retryable
    assert len(server.requests) == 1


def test_wrong_key_is_rejected_by_the_server(
    server: MessagesAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-ant-wrong-key-000000")
    error = failure(make_spec(server), request(), NoSleep())
    assert isinstance(error, ModelAuthError)
    assert "sk-ant-wrong-key-000000" not in "".join(traceback.format_exception(error))


def test_bad_request_is_a_request_error(server: MessagesAPIServer) -> None:
    server.push(bad_request("messages.1: roles must alternate"))
    error = failure(make_spec(server), request(), NoSleep())
    assert isinstance(error, ModelRequestError)
    assert "roles must alternate" in str(error) and "400" in str(error)
    assert len(server.requests) == 1


def test_malformed_json_body_is_a_server_error(server: MessagesAPIServer) -> None:
    server.push(malformed())
    error = failure(make_spec(server, retry={"max_attempts": 1}), request(max_validation_retries=0))
    assert isinstance(error, ModelServerError)
    assert "not valid JSON" in str(error)


def test_malformed_json_then_success_is_retried(server: MessagesAPIServer) -> None:
    server.push(malformed(), tool_use({"label": "true", "confidence": 4}))
    result = complete(make_spec(server), request(max_validation_retries=0), NoSleep())
    assert result.output.confidence == 4


def test_slow_server_times_out(server: MessagesAPIServer) -> None:
    # The server would answer, successfully, after 5 s: a timeout error means the client gave up
    # at its own 0.3 s timeout instead of waiting for that answer.
    server.push(delayed(5.0, tool_use({"label": "true", "confidence": 1})))
    error = failure(make_spec(server, timeout=0.3, retry={"max_attempts": 1}), request())
    assert isinstance(error, ModelTimeout) and error.retryable
    assert "0.3s" in str(error)
    assert len(server.requests) == 1


def test_connection_refused_is_a_connection_error(server: MessagesAPIServer) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = make_spec(server, base_url=f"http://127.0.0.1:{port}", retry={"max_attempts": 1})
    error = failure(spec, request())
    assert isinstance(error, ModelConnectionError)


def test_the_event_loop_is_never_blocked(server: MessagesAPIServer) -> None:
    server.push(delayed(0.3, tool_use({"label": "true", "confidence": 1})))

    async def go() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        provider = AnthropicProvider(make_spec(server))
        task = asyncio.create_task(ticker())
        try:
            await provider.complete(request())
        finally:
            task.cancel()
            await provider.aclose()
        return ticks

    assert asyncio.run(go()) >= 10


# --- configuration and secrets -------------------------------------------------------------------


def test_missing_key_names_the_variable(server: MessagesAPIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ModelConfigError) as info:
        AnthropicProvider(make_spec(server))
    assert KEY_ENV in str(info.value)
    assert SECRET not in str(info.value)


def test_missing_default_key_names_anthropic_api_key(
    server: MessagesAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    spec = ModelSpec.model_validate({"provider": "anthropic", "name": "claude-test"})
    with pytest.raises(ModelConfigError, match="ANTHROPIC_API_KEY"):
        create_provider(spec)


@pytest.mark.parametrize(
    "reply",
    [
        api_error(400, "invalid_request_error", f"bad header: Bearer {SECRET}"),
        api_error(401, "authentication_error", f"invalid x-api-key {SECRET}"),
        api_error(500, "api_error", f"upstream saw {SECRET}"),
    ],
    ids=["400", "401", "500"],
)
def test_the_key_never_appears_in_errors(server: MessagesAPIServer, reply: Any) -> None:
    server.push(reply)
    error = failure(make_spec(server, retry={"max_attempts": 1}), request())  # asserts no secret
    assert "***" in str(error)


@pytest.mark.parametrize("key", [SECRET, "vault-issued-credential-0042"], ids=["key-shaped", "any-shape"])
def test_an_echoed_key_never_reaches_the_logs(
    server: MessagesAPIServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    monkeypatch.setattr(server, "api_key", key)
    monkeypatch.setenv(KEY_ENV, key)
    # Every record of every logger, DEBUG included: the key is hidden by redaction, not by level.
    caplog.set_level(logging.DEBUG)
    server.push(
        api_error(500, "api_error", f"upstream saw {key}"),
        api_error(401, "authentication_error", f"invalid x-api-key {key}"),
    )
    with pytest.raises(ModelAuthError) as info:
        complete(make_spec(server), request(), NoSleep())
    assert key not in str(info.value)
    assert "invalid x-api-key ***" in caplog.text, "instructor's lines are kept, redacted"
    assert key not in caplog.text


def test_a_retried_call_that_succeeds_logs_no_warning(
    server: MessagesAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.push(server_error(), tool_use({"label": "true", "confidence": 3}))
    with caplog.at_level(logging.WARNING):
        result = complete(make_spec(server), request(), NoSleep())
    assert result.output.label == "true"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_provider_repr_and_result_carry_no_key(server: MessagesAPIServer) -> None:
    server.push(tool_use({"label": "true", "confidence": 1}))

    async def go() -> tuple[str, str]:
        provider = create_provider(make_spec(server))
        assert isinstance(provider, AnthropicProvider) and not provider.is_scripted
        try:
            result = await provider.complete(request())
        finally:
            await provider.aclose()
        return repr(provider), repr(result)

    shown = asyncio.run(go())
    assert SECRET not in shown[0] and SECRET not in shown[1]


def test_prompt_caching_marks_the_system_prompt_and_bills_cache_tokens_at_cache_prices(
    server: MessagesAPIServer,
) -> None:
    """Without cache prices, a cache read would be billed at the full input price."""
    server.push(
        tool_use({"label": "true", "confidence": 7}, input_tokens=50, output_tokens=10, cache_read=1000)
    )
    spec = make_spec(server, pricing={"input_per_mtok": 3, "output_per_mtok": 15})
    result = complete(spec, request(), NoSleep())
    body = server.requests[0].body
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert result.usage.input_tokens == 1050, "every input token counts against the token budget"
    assert result.cost_usd == pytest.approx((50 * 3 + 1000 * 0.3 + 10 * 15) / 1e6)

    server.reset()
    server.push(
        tool_use({"label": "true", "confidence": 7}, input_tokens=50, output_tokens=10, cache_written=1000)
    )
    spec = make_spec(
        server,
        pricing={
            "input_per_mtok": 3,
            "output_per_mtok": 15,
            "cache_write_per_mtok": 6,
            "cache_read_per_mtok": 0,
        },
    )
    assert complete(spec, request(), NoSleep()).cost_usd == pytest.approx((50 * 3 + 1000 * 6 + 10 * 15) / 1e6)

    server.reset()
    server.push(tool_use({"label": "true", "confidence": 7}))
    complete(make_spec(server, prompt_cache=False), request(), NoSleep())
    assert isinstance(server.requests[0].body["system"], str)


@pytest.mark.parametrize(("max_requests", "expected"), [(None, 6), (3, 3)])
def test_a_server_that_keeps_answering_garbage_gets_a_bounded_number_of_requests(
    server: MessagesAPIServer, max_requests: int | None, expected: int
) -> None:
    """The measured failure: malformed bodies with `max_attempts: 4` cost 12 requests (instructor's
    re-asks times the platform's attempts). Every request counts against one budget per call:
    `max_requests`, by default `retry.max_attempts + max_reasks` (4 + 2)."""
    server.push(*(malformed() for _ in range(20)))
    overrides: dict[str, Any] = {"retry": {"max_attempts": 4, "backoff": {"initial": 0.01, "max": 0.01}}}
    if max_requests is not None:
        overrides["max_requests"] = max_requests
    error = failure(make_spec(server, **overrides), request(), NoSleep())
    assert isinstance(error, ModelServerError), error
    assert len(server.requests) == expected
