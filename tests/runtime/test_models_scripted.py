"""The scripted provider: deterministic replay of a YAML/JSONL script, typed errors, exhaustion."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from agent_platform._runtime.messages import Message, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models import (
    ModelAuthError,
    ModelConfigError,
    ModelOutputInvalid,
    ModelOverloaded,
    ModelRateLimited,
    ModelRequest,
    ModelResult,
    ModelServerError,
    ModelTimeout,
    ScriptExhausted,
    Usage,
    create_provider,
)
from agent_platform._runtime.models.scripted import ScriptedProvider
from agent_platform._runtime.tokens import estimate_tokens, message_tokens
from agent_platform._spec.kinds import ModelSpec


class Summary(BaseModel):
    summary: str = Field(min_length=1)
    score: int = Field(default=0, ge=0, le=10)


class WebSearch(BaseModel):
    action: Literal["web-search"]
    arguments: dict[str, str]


class FinalAnswer(BaseModel):
    action: Literal["final_answer"]
    answer: Summary


class Decision(BaseModel):
    thought: str
    action: Annotated[WebSearch | FinalAnswer, Field(discriminator="action")]


SCRIPT = """\
responses:
  researcher:
    - thought: look it up
      action: {action: web-search, arguments: {query: ray actors}}
      usage: {input_tokens: 812, output_tokens: 64}
    - thought: done
      action:
        action: final_answer
        answer: {summary: Ray actors are stateful workers., score: 8}
  ingest/summarise:
    - {summary: first}
    - response: {summary: second, score: 3}
      usage: {input_tokens: 5}
  "*":
    - {summary: from the fallback}
"""


def make_spec(**overrides: Any) -> ModelSpec:
    data: dict[str, Any] = {
        "provider": "scripted",
        "name": "script-model",
        "script": "script.yaml",
        "retry": {"max_attempts": 3, "backoff": {"initial": 0.01, "max": 0.05, "jitter": "none"}},
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }
    data.update(overrides)
    return ModelSpec.model_validate(data)


def write(tmp_path: Path, text: str, name: str = "script.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def req(
    key: str, model: type[BaseModel] = Summary, messages: list[Message] | None = None
) -> ModelRequest[Any]:
    return ModelRequest(
        system="You are terse.",
        messages=messages or [Message.user("Summarise: Ray.")],
        response_model=model,
        key=key,
    )


class NoSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def run(provider: ScriptedProvider, request: ModelRequest[Any]) -> ModelResult[Any]:
    return asyncio.run(provider.complete(request))


@pytest.fixture
def provider(tmp_path: Path) -> ScriptedProvider:
    return ScriptedProvider(make_spec(), write(tmp_path, SCRIPT), sleep=NoSleep())


# --- replay -------------------------------------------------------------------------------------


def test_replays_entries_in_order_per_key(provider: ScriptedProvider) -> None:
    assert provider.is_scripted and provider.name == "scripted"
    first = run(provider, req("researcher", Decision))
    assert first.output.action == WebSearch(action="web-search", arguments={"query": "ray actors"})
    assert first.usage == Usage(812, 64)
    assert first.cost_usd == pytest.approx((812 * 1.0 + 64 * 2.0) / 1e6)
    assert first.provider == "scripted" and first.model == "script-model"
    assert first.response_id == "scripted:researcher:1" and first.attempts == 1
    other = run(provider, req("ingest/summarise"))
    assert other.output == Summary(summary="first")
    second = run(provider, req("researcher", Decision))
    assert isinstance(second.output.action, FinalAnswer)
    assert second.output.action.answer.score == 8
    assert run(provider, req("ingest/summarise")).output == Summary(summary="second", score=3)


def test_fallback_answers_unknown_keys_and_exhausted_ones(provider: ScriptedProvider) -> None:
    assert run(provider, req("someone-else")).output.summary == "from the fallback"
    run(provider, req("ingest/summarise"))
    run(provider, req("ingest/summarise"))
    with pytest.raises(ScriptExhausted) as info:  # the fallback's single entry is used up
        run(provider, req("ingest/summarise"))
    message = str(info.value)
    assert "'ingest/summarise'" in message and "2 entries" in message and "1 under '*'" in message
    assert "on_script_exhausted: synthesize" in message


def test_usage_is_estimated_when_the_script_gives_none(provider: ScriptedProvider) -> None:
    run(provider, req("ingest/summarise"))  # consume "first"
    messages = [
        Message.user("Summarise: Ray."),
        Message("assistant", [ToolUseBlock("t1", "fetch", {"url": "https://ray.io"})]),
        Message("user", [ToolResultBlock("t1", "Ray is a framework. " * 20)]),
    ]
    result = run(provider, req("ingest/summarise", messages=messages))
    schema = estimate_tokens(json.dumps(Summary.model_json_schema(), separators=(",", ":")))
    expected_input = estimate_tokens("You are terse.") + sum(message_tokens(m) for m in messages) + schema
    assert result.usage.input_tokens == 5  # given by the script
    answer = run(
        ScriptedProvider(make_spec(), script=provider.script), req("ingest/summarise", messages=messages)
    )
    assert answer.usage.input_tokens == expected_input
    assert answer.usage.output_tokens == estimate_tokens('{"summary":"first"}')


def test_cursor_lives_per_provider_and_fork_starts_fresh(provider: ScriptedProvider) -> None:
    run(provider, req("ingest/summarise"))
    forked = provider.fork()
    assert forked.script is provider.script
    assert run(forked, req("ingest/summarise")).output.summary == "first"
    assert run(provider, req("ingest/summarise")).output.summary == "second"
    assert provider.remaining("ingest/summarise") == 0 and forked.remaining("ingest/summarise") == 1


def test_replay_is_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path, SCRIPT)
    keys = ["researcher", "ingest/summarise", "x", "researcher", "ingest/summarise"]
    models: list[type[BaseModel]] = [Decision, Summary, Summary, Decision, Summary]

    def replay() -> list[str]:
        p = ScriptedProvider(make_spec(), path)
        return [run(p, req(k, m)).output.model_dump_json() for k, m in zip(keys, models, strict=True)]

    assert replay() == replay()


# --- exhaustion ---------------------------------------------------------------------------------


def test_exhausted_key_synthesises_when_asked(tmp_path: Path) -> None:
    spec = make_spec(on_script_exhausted="synthesize")
    provider = ScriptedProvider(spec, write(tmp_path, "responses:\n  researcher: []\n"))
    result = run(provider, req("researcher", Decision))
    # the decision union synthesises its final_answer branch, so an agent loop would stop
    assert result.output == Decision(
        thought="text", action=FinalAnswer(action="final_answer", answer=Summary(summary="text"))
    )
    assert result.response_id == "scripted:researcher:synthesized"
    assert result.usage.output_tokens > 0 and result.usage.input_tokens > 0
    assert run(provider, req("researcher", Decision)).output == result.output  # deterministic


def test_without_a_script_every_answer_is_synthesised() -> None:
    spec = ModelSpec.model_validate({"provider": "scripted", "on_script_exhausted": "synthesize"})
    provider = create_provider(spec)
    assert isinstance(provider, ScriptedProvider)
    assert asyncio.run(provider.complete(req("anyone"))).output == Summary(summary="text")


def test_exhausted_key_errors_by_default(provider: ScriptedProvider) -> None:
    run(provider, req("researcher", Decision))
    run(provider, req("researcher", Decision))
    run(provider, req("someone"))  # uses up the '*' fallback's entry
    with pytest.raises(ScriptExhausted) as info:
        run(provider, req("researcher", Decision))
    assert "'researcher'" in str(info.value) and "has 2 entries" in str(info.value)
    assert not info.value.retryable


# --- invalid entries and scripted errors --------------------------------------------------------


def test_an_entry_that_does_not_validate_is_model_output_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, "responses:\n  a:\n    - {summary: ok, score: 11}\n")
    provider = ScriptedProvider(make_spec(), path)
    with pytest.raises(ModelOutputInvalid) as info:
        run(provider, req("a"))
    message = str(info.value)
    assert f"{path}:3:7" in message
    assert "less than or equal to 10" in message and "Summary" in message


def test_a_mistyped_error_entry_gets_a_hint(tmp_path: Path) -> None:
    provider = ScriptedProvider(make_spec(), write(tmp_path, "responses:\n  a:\n    - error: rate_limit\n"))
    with pytest.raises(ModelOutputInvalid, match="must be one of: rate_limited"):
        run(provider, req("a"))


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("rate_limited", ModelRateLimited),
        ("overloaded", ModelOverloaded),
        ("server_error", ModelServerError),
        ("timeout", ModelTimeout),
    ],
)
def test_scripted_errors_raise_typed_errors(tmp_path: Path, kind: str, error: type[Exception]) -> None:
    path = write(tmp_path, f"responses:\n  a:\n    - error: {kind}\n      message: simulated\n")
    provider = ScriptedProvider(make_spec(retry={"max_attempts": 1}), path)
    with pytest.raises(error) as info:
        run(provider, req("a"))
    assert f"{path}:3:7" in str(info.value) and "simulated" in str(info.value)


def test_scripted_errors_go_through_the_retry_policy(tmp_path: Path) -> None:
    text = "responses:\n  a:\n    - error: rate_limited\n    - error: overloaded\n    - {summary: finally}\n"
    sleep = NoSleep()
    retries: list[tuple[int, str, float]] = []
    provider = ScriptedProvider(
        make_spec(),
        write(tmp_path, text),
        sleep=sleep,
        on_retry=lambda attempt, error, delay: retries.append((attempt, type(error).__name__, delay)),
    )
    result = run(provider, req("a"))
    assert result.output.summary == "finally" and result.attempts == 3
    assert sleep.calls == [pytest.approx(0.01), pytest.approx(0.02)]
    assert [(attempt, kind) for attempt, kind, _ in retries] == [
        (1, "ModelRateLimited"),
        (2, "ModelOverloaded"),
    ]
    assert [delay for *_, delay in retries] == sleep.calls


def test_non_retryable_scripted_errors_are_not_retried(tmp_path: Path) -> None:
    provider = ScriptedProvider(
        make_spec(), write(tmp_path, "responses:\n  a:\n    - error: auth\n    - {summary: x}\n")
    )
    with pytest.raises(ModelAuthError):
        run(provider, req("a"))
    assert provider.remaining("a") == 1


# --- script files -------------------------------------------------------------------------------


def test_jsonl_scripts(tmp_path: Path) -> None:
    lines = [
        {"key": "a", "summary": "one", "usage": {"input_tokens": 3, "output_tokens": 4}},
        {"key": "a", "error": "timeout"},
        {"key": "*", "response": {"summary": "any"}},
    ]
    path = write(tmp_path, "\n".join(json.dumps(line) for line in lines) + "\n\n", "script.jsonl")
    provider = ScriptedProvider(make_spec(retry={"max_attempts": 1}), path)
    assert run(provider, req("a")).usage == Usage(3, 4)
    with pytest.raises(ModelTimeout, match=r"script\.jsonl:2:1"):
        run(provider, req("a"))
    assert run(provider, req("b")).output.summary == "any"


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("responses:\n  a:\n    - {summary: [unclosed\n", ":4:1", ""),
        ("responses:\n  a: {summary: x}\n", ":2:6", "must be a list"),
        ("answers:\n  a: []\n", ":1:1", "`responses:`"),
        ("responses:\n  a: []\nextra: 1\n", ":3:1", "unknown top-level key 'extra'"),
        ("responses:\n  a:\n    - summary: x\n      usage: {input_tokens: -1}\n", ":3:7", "non-negative"),
        ("responses:\n  a:\n    - plain string\n", ":3:7", "must be a mapping"),
        ("responses:\n  a:\n    - {summary: x}\n    - {summary: x, summary: y}\n", ":4:", "duplicate"),
    ],
    ids=["yaml-syntax", "not-a-list", "no-responses", "extra-key", "bad-usage", "not-a-mapping", "dup-key"],
)
def test_malformed_scripts_are_config_errors_with_locations(
    tmp_path: Path, text: str, where: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ModelConfigError) as info:
        ScriptedProvider(make_spec(), path)
    message = str(info.value)
    assert f"{path}{where}" in message
    assert fragment.lower() in message.lower()


def test_malformed_jsonl_line_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, '{"key": "a", "summary": "x"}\n{"key": "a", "summary": }\n', "s.jsonl")
    with pytest.raises(ModelConfigError, match=rf"{path}:2:25: .*invalid JSON"):
        ScriptedProvider(make_spec(), path)
    path = write(tmp_path, '{"summary": "no key"}\n', "t.jsonl")
    with pytest.raises(ModelConfigError, match=rf'{path}:1:1: .*"key"'):
        ScriptedProvider(make_spec(), path)


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="script file not found") as info:
        ScriptedProvider(make_spec(), tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)


def test_factory_resolves_the_script_relative_to_the_spec_file(tmp_path: Path) -> None:
    write(tmp_path, SCRIPT)
    provider = create_provider(make_spec(), base_dir=tmp_path)
    assert isinstance(provider, ScriptedProvider)
    assert provider.script.path == str(tmp_path / "script.yaml")
    assert asyncio.run(provider.complete(req("ingest/summarise"))).output.summary == "first"
