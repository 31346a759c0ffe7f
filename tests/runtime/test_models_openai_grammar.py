"""`structured_output: json_object_schema`, the mode for llama-cpp-python: JSON mode with the
response model's schema in `response_format` (which that server compiles to a grammar), driven
through the real `openai` SDK and instructor against the strict local chat-completions server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError
from tests.support.openai_api import ChatCompletionsServer, content_answer, tool_call
from tests.support.strict_shapes import chat_completions_problem

from agent_platform._runtime.messages import Message, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models import ModelOutputInvalid, ModelRequest, ModelResult, create_provider
from agent_platform._runtime.models.openai_provider import (
    escape_string_controls,
    grammar_format,
    grammar_schema,
)
from agent_platform._spec.kinds import ModelSpec

KEY_ENV = "AP_TEST_GRAMMAR_KEY"
SECRET = "sk-grammar-test-0123456789"


class Verdict(BaseModel):
    """A verdict on a claim."""

    verdict: str = Field(pattern="^(true|false)$")
    confidence: float = Field(ge=0, le=1)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer(api_key=SECRET) as server:
        yield server


@pytest.fixture
def server(shared_server: ChatCompletionsServer, monkeypatch: pytest.MonkeyPatch) -> ChatCompletionsServer:
    shared_server.reset()
    monkeypatch.setenv(KEY_ENV, SECRET)
    return shared_server


def spec(server: ChatCompletionsServer, **overrides: Any) -> ModelSpec:
    data: dict[str, Any] = {
        "provider": "openai",
        "name": "gemma-3-270m",
        "api_key_env": KEY_ENV,
        "base_url": f"{server.url}/v1",
        "structured_output": "json_object_schema",
        "retry": {"max_attempts": 1},
        "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }
    data.update(overrides)
    return ModelSpec.model_validate(data)


def complete(model: ModelSpec) -> ModelResult[Verdict]:
    async def go() -> ModelResult[Verdict]:
        provider = create_provider(model)
        try:
            return await provider.complete(
                ModelRequest(
                    system="Judge the claim.",
                    messages=[Message.user("The sky is green.")],
                    response_model=Verdict,
                    key="judge",
                )
            )
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_the_schema_goes_in_response_format_and_the_answer_comes_from_the_content(
    server: ChatCompletionsServer,
) -> None:
    server.push(
        content_answer('{"verdict": "false", "confidence": 0.9}', prompt_tokens=40, completion_tokens=12)
    )
    result = complete(spec(server))
    assert result.output == Verdict(verdict="false", confidence=0.9)
    assert result.usage.total_tokens == 52 and result.cost_usd == pytest.approx((40 + 2 * 12) / 1e6)
    body = server.requests[0].body
    assert "tools" not in body and "tool_choice" not in body
    assert body["response_format"] == {"type": "json_object", "schema": Verdict.model_json_schema()}
    # instructor's JSON mode also shows the schema in the prompt, so instructions and grammar agree
    assert "confidence" in json.dumps(body["messages"])


def test_an_answer_out_of_shape_is_reasked_in_the_same_shape_and_counted(
    server: ChatCompletionsServer,
) -> None:
    server.push(
        content_answer('{"verdict": "maybe", "confidence": 2}', prompt_tokens=40, completion_tokens=10),
        content_answer('{"verdict": "true", "confidence": 0.5}', prompt_tokens=60, completion_tokens=10),
    )
    result = complete(spec(server, max_reasks=1))
    assert result.output.verdict == "true" and result.attempts == 2
    assert result.usage.input_tokens == 100  # the rejected answer's tokens are paid for too
    second = server.requests[1].body
    assert second["response_format"]["type"] == "json_object" and "schema" in second["response_format"]
    # the re-ask carries the bad answer back as a plain assistant turn the strict server accepts
    assert any(m["role"] == "assistant" for m in second["messages"])


def test_reasks_exhausted_is_output_invalid(server: ChatCompletionsServer) -> None:
    server.push(*(content_answer('{"verdict": "maybe", "confidence": 0.5}') for _ in range(2)))
    with pytest.raises(ModelOutputInvalid, match="2 attempts"):
        complete(spec(server, max_reasks=1))


def test_the_strict_server_refuses_what_the_api_refuses_in_response_format() -> None:
    base: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    schema = {"type": "object"}
    assert chat_completions_problem({**base, "response_format": grammar_format(Verdict)}) is None
    assert (
        chat_completions_problem(
            {
                **base,
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            }
        )
        is None
    )
    for bad, message in (
        ({"type": "grammar"}, "not one of"),
        ({"type": "json_schema", "schema": schema}, "unrecognized"),
        ({"type": "json_schema", "json_schema": {"schema": schema}}, "needs a 'name'"),
        ({"type": "json_object", "schema": "{}"}, "JSON Schema object"),
        ({"type": "text", "schema": schema}, "unrecognized"),
    ):
        problem = chat_completions_problem({**base, "response_format": bad})
        assert problem is not None and message in problem, (bad, problem)


def test_the_mode_is_openai_only_and_named_in_the_spec() -> None:
    with pytest.raises(ValidationError, match="structured_output: tools"):
        ModelSpec.model_validate(
            {"provider": "anthropic", "name": "claude", "structured_output": "json_object_schema"}
        )
    with pytest.raises(ValidationError, match="json_object_schema"):
        ModelSpec.model_validate({"provider": "openai", "name": "m", "structured_output": "grammar"})


def test_the_grammar_leaves_out_upper_bounds_and_the_answer_is_still_held_to_them(
    server: ChatCompletionsServer,
) -> None:
    """llama.cpp writes `maxLength: 2000` out as 2,000 nested rules and refuses the grammar (then
    generates unconstrained text); a large bound is checked on the answer instead."""
    schema = {
        "type": "object",
        "properties": {
            "maxLength": {"type": "string", "maxLength": 2000, "minLength": 1},
            "tags": {"type": "array", "maxItems": 300, "items": {"$ref": "#/$defs/Tag"}},
            "kind": {"enum": [{"maxLength": 1}], "default": {"maxItems": 2}},
        },
        "$defs": {"Tag": {"type": "string", "maxLength": 20}},
        "anyOf": [{"maxProperties": 1000}, {"required": ["kind"]}],
    }
    assert grammar_schema(schema) == {
        "type": "object",
        "properties": {
            "maxLength": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "kind": {"enum": [{"maxLength": 1}], "default": {"maxItems": 2}},
        },
        "$defs": {"Tag": {"type": "string", "maxLength": 20}},  # a small bound stays: it ends the string
        "anyOf": [{}, {"required": ["kind"]}],
    }

    class Short(BaseModel):
        word: str = Field(max_length=300)

    assert "maxLength" not in json.dumps(grammar_format(Short))
    server.push(content_answer(json.dumps({"word": "w" * 301})), content_answer('{"word": "short"}'))

    async def go() -> ModelResult[Short]:
        provider = create_provider(spec(server, max_reasks=1))
        try:
            return await provider.complete(
                ModelRequest(
                    system="One word.", messages=[Message.user("Say it.")], response_model=Short, key="k"
                )
            )
        finally:
            await provider.aclose()

    result = asyncio.run(go())
    assert result.output.word == "short" and result.attempts == 2


def test_raw_control_characters_in_strings_are_escaped_before_parsing(server: ChatCompletionsServer) -> None:
    """llama-cpp-python's JSON grammar admits a raw newline inside a string, which JSON forbids."""
    assert (
        escape_string_controls('{"a": "x\ny\t\x01", "b": "q\\"\n"}\n')
        == '{"a": "x\\ny\\t\\u0001", "b": "q\\"\\n"}\n'
    )
    assert escape_string_controls('{\n  "a": 1\n}') == '{\n  "a": 1\n}'  # whitespace between tokens stays

    class Note(BaseModel):
        text: str

    server.push(tool_call('{"text": "tab\there"}'))

    async def go() -> ModelResult[Note]:
        provider = create_provider(spec(server, structured_output="tools"))
        try:
            return await provider.complete(
                ModelRequest(system="Note.", messages=[Message.user("A tab.")], response_model=Note, key="k")
            )
        finally:
            await provider.aclose()

    assert asyncio.run(go()).output.text == "tab\there"  # in a forced tool call's arguments too


def test_a_raw_newline_inside_a_string_reaches_the_model_as_a_newline(server: ChatCompletionsServer) -> None:
    class Note(BaseModel):
        text: str

    server.push(content_answer('{"text": "line one\nline two"}'))

    async def go() -> ModelResult[Note]:
        provider = create_provider(spec(server))
        try:
            return await provider.complete(
                ModelRequest(
                    system="Note.", messages=[Message.user("Two lines.")], response_model=Note, key="k"
                )
            )
        finally:
            await provider.aclose()

    result = asyncio.run(go())
    assert result.output.text == "line one\nline two" and result.attempts == 1


def test_every_turn_goes_out_with_string_content(server: ChatCompletionsServer) -> None:
    """instructor's JSON modes rewrite turns into arrays of text parts; llama-cpp-python accepts only
    strings for system, assistant and tool messages (HTTP 500, one validation error per role)."""
    conversation = [
        Message.user("Find it."),
        Message(role="assistant", content=[ToolUseBlock(id="call-1", name="search", input={"q": "x"})]),
        Message(role="user", content=[ToolResultBlock(tool_use_id="call-1", content="found: y")]),
    ]
    server.push(content_answer('{"verdict": "true", "confidence": 1}'))

    async def go() -> ModelResult[Verdict]:
        provider = create_provider(spec(server))
        try:
            return await provider.complete(
                ModelRequest(system="Judge.", messages=conversation, response_model=Verdict, key="k")
            )
        finally:
            await provider.aclose()

    assert asyncio.run(go()).output.verdict == "true"
    messages = server.requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert all(isinstance(m["content"], str) for m in messages if m["role"] != "assistant")
    assert "content" not in messages[2] and messages[3]["content"] == "found: y"


def test_a_small_integer_range_becomes_an_enum_the_grammar_holds() -> None:
    """llama-cpp-python's converter drops minimum/maximum; an enum of the values it keeps."""
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            "even": {"type": "integer", "exclusiveMinimum": 0, "maximum": 6, "multipleOf": 2},
            "open": {"type": "integer", "minimum": 0},
            "wide": {"type": "integer", "minimum": 0, "maximum": 1000},
            "fixed": {"type": "integer", "minimum": 0, "maximum": 3, "enum": [1, 2]},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }
    props = grammar_schema(schema)["properties"]
    assert props["n"]["enum"] == list(range(1, 11)) and props["n"]["maximum"] == 10
    assert props["even"]["enum"] == [2, 4, 6]
    assert props["fixed"]["enum"] == [1, 2]  # a declared enum is the grammar's already
    assert all("enum" not in props[name] for name in ("open", "wide", "ratio"))
