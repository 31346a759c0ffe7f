"""Content capture: off unless `configure_tracing(capture_content=True)` or the standard
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for it; then a run's model calls carry what
the model was sent and answered, its tool calls their arguments and results, in the GenAI
conventions' shapes, with secrets masked (personal data too in tool results), cut to size, and the
deployed actors capture when the driver asked for it."""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from tests.runtime.test_engine import World, agent, call, final

from agent_platform._runtime.content_capture import ContentCapture
from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.outcomes import Outcome
from agent_platform._runtime.tracing import CAPTURE_CONTENT_ENV, TracingHandle, configure_tracing

ENV = CAPTURE_CONTENT_ENV
assert ENV == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

CONTENT_ATTRIBUTES = (
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)

# Secrets as they turn up in real content. None may reach a span.
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
ANTHROPIC_KEY = "sk-ant-api03-" + "Qx7" * 30
DSN_PASSWORD = "s3cr3t-pa55word"
ENV_TOKEN = "tok-from-the-environment-4711"
CUSTOM_KEY = "value-of-a-custom-api-key-env"
LEAKY = (
    f"curl -H 'Authorization: Bearer {BEARER}' with key {ANTHROPIC_KEY} "
    f"to postgresql://app:{DSN_PASSWORD}@db.internal:5432/runs, password=swordfish99, "
    f"token {ENV_TOKEN}, custom {CUSTOM_KEY}; mail ann@example.com"
)
SECRETS = (BEARER, ANTHROPIC_KEY, DSN_PASSWORD, "swordfish99", ENV_TOKEN, CUSTOM_KEY)

REMOTE_MODEL = """\
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: remote}
spec: {provider: anthropic, name: claude-sonnet-4-5, api_key_env: LLM_ACCESS}
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(ENV, raising=False)
    return World(tmp_path)


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch) -> Iterator[TracingHandle]:
    monkeypatch.setenv(ENV, "true")
    handle = configure_tracing(memory=True)
    yield handle
    handle.shutdown()


def content_of(spans: tuple[ReadableSpan, ...]) -> list[str]:
    """Every captured value, on spans and on their events."""
    found = []
    for span in spans:
        for attributes in [span.attributes or {}, *(e.attributes or {} for e in span.events)]:
            found += [str(attributes[k]) for k in CONTENT_ATTRIBUTES if k in attributes]
    return found


def details(span: ReadableSpan) -> dict[str, Any]:
    """The parsed content of a chat span's `gen_ai.client.inference.operation.details` event."""
    (event,) = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
    return {key: json.loads(str(value)) for key, value in (event.attributes or {}).items()}


# --- switching it on -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "captures"),
    [
        (None, False),
        ("", False),
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        ("false", False),
        ("False", False),
        ("SPAN_ONLY", True),  # the newer GenAI mode names
        ("span_and_event", True),
        ("NO_CONTENT", False),
    ],
)
def test_the_environment_variable_switches_capture(
    monkeypatch: pytest.MonkeyPatch, value: str | None, captures: bool
) -> None:
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    with configure_tracing(memory=True) as handle:
        assert handle.capture_content is captures


def test_an_unknown_value_captures_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV, "yes")
    with caplog.at_level(logging.WARNING), configure_tracing(memory=True) as handle:
        assert not handle.capture_content
    assert ENV in caplog.text


def test_the_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "true")
    with configure_tracing(memory=True, capture_content=False) as handle:
        assert not handle.capture_content
    monkeypatch.setenv(ENV, "false")
    with configure_tracing(memory=True, capture_content=True) as handle:
        assert handle.capture_content
    with configure_tracing(capture_content=True) as handle:
        assert handle.capture_content  # spans go nowhere but are still made: capture applies
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with configure_tracing(memory=True, capture_content=True) as handle:
        assert not handle.capture_content  # no tracing, nothing to capture into


async def test_off_by_default_nothing_is_captured(world: World) -> None:
    with configure_tracing(memory=True) as handle:
        result = await world.run(agent(), {"a": [call("lookup", query=LEAKY), final()]}, tracing=handle)
        spans = handle.finished_spans()
    assert result.outcome is Outcome.COMPLETED
    assert not handle.capture_content and content_of(spans) == []
    assert "ann@example.com" not in repr([(s.attributes, s.events) for s in spans])


# --- what is recorded ---------------------------------------------------------------------------------------


async def test_a_run_records_prompts_answers_and_tool_calls(world: World, capturing: TracingHandle) -> None:
    result = await world.run(agent(), {"a": [call("lookup", query="ray"), final("done")]}, tracing=capturing)
    assert result.outcome is Outcome.COMPLETED
    spans = capturing.finished_spans()
    first, second = [s for s in spans if s.name.startswith("chat ")]

    asked = details(first)
    assert asked["gen_ai.system_instructions"][0]["type"] == "text"
    assert asked["gen_ai.system_instructions"][0]["content"].startswith("Answer about ray.")
    (task,) = asked["gen_ai.input.messages"]
    assert task["role"] == "user" and task["parts"][0]["type"] == "text"
    assert '"topic": "ray"' in task["parts"][0]["content"]
    (answer,) = asked["gen_ai.output.messages"]
    assert answer["role"] == "assistant" and answer["finish_reason"] == "tool_call"
    (decision,) = answer["parts"]
    assert decision["type"] == "tool_call" and decision["name"] == "DecisionA"  # the decision model
    assert decision["arguments"]["action"] == {"action": "lookup", "arguments": {"query": "ray"}}

    # The second call was sent the first answer and the tool's result, as the conversation holds them.
    _, decided, returned = details(second)["gen_ai.input.messages"]
    assert decided["role"] == "assistant" and decided["parts"][-1]["type"] == "tool_call"
    (response,) = returned["parts"]
    assert response["type"] == "tool_call_response" and response["id"] == decided["parts"][-1]["id"]
    assert "facts about ray" in response["response"]

    (tool,) = [s for s in spans if s.name == "execute_tool lookup"]
    attributes = tool.attributes or {}
    assert json.loads(str(attributes["gen_ai.tool.call.arguments"])) == {"query": "ray"}
    assert json.loads(str(attributes["gen_ai.tool.call.result"])) == {"text": "facts about ray"}


async def test_a_failed_model_call_still_records_what_it_was_sent(
    world: World, capturing: TracingHandle
) -> None:
    result = await world.run(agent(), {"a": []}, tracing=capturing)  # the script is empty
    assert result.outcome is Outcome.FAILED
    (chat,) = [s for s in capturing.finished_spans() if s.name.startswith("chat ")]
    recorded = details(chat)
    assert "gen_ai.output.messages" not in recorded
    assert '"topic": "ray"' in recorded["gen_ai.input.messages"][0]["parts"][0]["content"]


async def test_captured_content_has_its_secrets_masked(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "true")
    monkeypatch.setenv("SEARCH_SERVICE_TOKEN", ENV_TOKEN)  # a credential by its name
    monkeypatch.setenv("LLM_ACCESS", CUSTOM_KEY)  # a key only because the remote Model spec says so
    capturing = configure_tracing(memory=True)
    result = await world.run(
        agent() + REMOTE_MODEL, {"a": [call("lookup", query=LEAKY), final()]}, tracing=capturing
    )
    capturing.shutdown()
    assert result.outcome is Outcome.COMPLETED
    spans = capturing.finished_spans()
    captured = content_of(spans)
    assert len(captured) == 2 * 3 + 2  # two chat events (system, input, output), the tool's two
    for value in captured:
        for secret in SECRETS:
            assert secret not in value, (secret, value)
    (tool,) = [s for s in spans if s.name == "execute_tool lookup"]
    arguments = str((tool.attributes or {})["gen_ai.tool.call.arguments"])
    assert "Authorization: Bearer ***" in arguments and "postgresql://app:***@db.internal" in arguments
    assert "password=***" in arguments and "ann@example.com" in arguments  # what the model wrote
    tool_result = str((tool.attributes or {})["gen_ai.tool.call.result"])
    assert "[EMAIL]" in tool_result and "ann@example.com" not in tool_result  # no guardrail read it yet


async def test_captured_content_is_cut_to_size(world: World, capturing: TracingHandle) -> None:
    long = "word " * 4_000
    await world.run(agent(), {"a": [call("lookup", query=long), final()]}, tracing=capturing)
    (tool,) = [s for s in capturing.finished_spans() if s.name == "execute_tool lookup"]
    arguments = str((tool.attributes or {})["gen_ai.tool.call.arguments"])
    assert len(arguments) == 8_192 and arguments.endswith("…")
    for value in content_of(capturing.finished_spans()):
        assert len(value) <= 8_192


# --- the pieces ------------------------------------------------------------------------------------------


def test_messages_in_the_genai_shapes() -> None:
    capture = ContentCapture()
    messages = [
        Message.user("hi"),
        Message("assistant", [TextBlock("thinking"), ToolUseBlock("toolu_1", "Decide", {"q": "x"})]),
        Message("user", [ToolResultBlock("toolu_1", "result", is_error=True)]),
        {"role": "user", "content": "as a Messages-API dict"},
    ]
    assert json.loads(capture.input_messages(messages)) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "thinking"},
                {"type": "tool_call", "id": "toolu_1", "name": "Decide", "arguments": {"q": "x"}},
            ],
        },
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": "result"}]},
        {"role": "user", "parts": [{"type": "text", "content": "as a Messages-API dict"}]},
    ]
    assert json.loads(capture.output_messages("plain text")) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "plain text"}], "finish_reason": "stop"}
    ]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ('{"Authorization": "Bearer abcdefghijklmnop"}', '{"Authorization": "Bearer ***"}'),
        ("x-api-key: 0123456789abcdef", "x-api-key: ***"),
        ("gh token ghp_" + "a" * 36, "gh token ***"),
        ("mysql://root:toor1234@localhost/db", "mysql://root:***@localhost/db"),
        ("postgresql://u@h/db?password=abc123xyz", "postgresql://u@h/db?password=***"),
        ("max_tokens: 1024, author: Ann, tokens used: 12", "max_tokens: 1024, author: Ann, tokens used: 12"),
        ("https://example.com/path?q=1", "https://example.com/path?q=1"),
    ],
)
def test_secret_shapes_are_masked_and_ordinary_text_is_not(text: str, kept: str) -> None:
    assert ContentCapture().redact_text(text) == kept


def test_values_under_credential_keys_are_masked_wherever_they_are() -> None:
    capture = ContentCapture()
    arguments = {
        "query": "q",
        "api_key": "short",
        "headers": {"Authorization": "anything at all", "Accept": "json"},
        "max_tokens": 100,
        "auth": {"token": 42, "enabled": True},
    }
    assert json.loads(capture.tool_arguments(arguments)) == {
        "query": "q",
        "api_key": "***",
        "headers": {"Authorization": "***", "Accept": "json"},
        "max_tokens": 100,
        "auth": {"token": "***", "enabled": True},
    }


def test_a_secret_at_the_cut_is_masked_whole() -> None:
    capture = ContentCapture(max_chars=60)
    text = capture.tool_result("x" * 40 + " " + ANTHROPIC_KEY)
    assert len(text) == 44 and text.endswith(" ***") and "sk-" not in text


def test_known_secret_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("PWD", "/home/someone/project")  # the working directory is no secret
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # too short to be one
    capture = ContentCapture()
    text = "correct-horse-battery in /home/someone/project with token auth"
    assert capture.redact_text(text) == "*** in /home/someone/project with token auth"
    capture.add_secrets(["in /home", None, "short"])
    assert capture.redact_text(text) == "*** ***/someone/project with token auth"


# --- the deployed actors -----------------------------------------------------------------------------------

SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, script: script.json}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: worker}
    spec:
      model: m
      instructions: Say hello.
    """
)


@pytest.mark.parametrize("driver_env", ["true", "false"])
def test_actors_capture_as_the_driver_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver_env: str
) -> None:
    """An actor's process does not inherit the driver's environment: the setting travels in its
    HostConfig, read where the deployment is applied."""
    from agent_platform._deploy.bundle import SpecBundle
    from agent_platform._deploy.host import HostConfig, UnitHost

    (tmp_path / "script.json").write_text('{"responses": {}}')
    (tmp_path / "specs.yaml").write_text(SPECS)
    bundle = SpecBundle.from_files([tmp_path / "specs.yaml"], [])
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(ENV, driver_env)
    config = HostConfig(namespace="test", state_dir=str(tmp_path / "state"))  # on the driver
    monkeypatch.delenv(ENV)  # the actor's environment lacks it
    host = UnitHost(bundle, "Agent/worker", 0, 1, config)
    try:
        assert host.tracing.capture_content is (driver_env == "true")
    finally:
        host.tracing.shutdown()
    monkeypatch.setenv(ENV, driver_env)
    explicit = HostConfig(namespace="test", state_dir=str(tmp_path / "state"), capture_content=False)
    host = UnitHost(bundle, "Agent/worker", 0, 1, explicit)
    assert not host.tracing.capture_content
    host.tracing.shutdown()
