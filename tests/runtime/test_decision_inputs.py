"""The agent decision model and run-input handling, directly."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from agent_platform._runtime.decision import ActionChoice, action_of, action_of_dump, build_decision_model
from agent_platform._runtime.inputs import InputError, apply_defaults, check_inputs


class Query(BaseModel):
    query: str
    max_results: int = Field(5, ge=1, le=10)
    note: str | None = None


class Answer(BaseModel):
    summary: str
    confidence: float = Field(ge=0, le=1)
    extra: str | None = None


CHOICES = [
    ActionChoice("web-search", "tool", "Search the web.", Query),
    ActionChoice("fact-checker", "delegate", "Check a claim.", None),
    ActionChoice("final_answer", "final_answer", "Finish.", Answer),
]
Decision = build_decision_model("researcher", CHOICES)


def test_each_action_validates_its_own_payload() -> None:
    tool = Decision.model_validate(
        {"thought": "t", "action": {"action": "web-search", "arguments": {"query": "q"}}}
    )
    assert action_of(tool) == ("tool", "web-search", {"query": "q"})  # unset optionals are absent
    done = Decision.model_validate(
        {"action": {"action": "final_answer", "answer": {"summary": "s", "confidence": 0.5}}}
    )
    assert action_of(done) == ("final_answer", "final_answer", {"summary": "s", "confidence": 0.5})
    sub = Decision.model_validate({"action": {"action": "delegate:fact-checker", "task": {}}})
    assert action_of(sub) == ("delegate", "fact-checker", {})


def test_action_of_dump_agrees_with_action_of() -> None:
    decision = Decision.model_validate(
        {"action": {"action": "web-search", "arguments": {"query": "q", "max_results": 3}}}
    )
    assert action_of_dump(decision.model_dump(mode="json", exclude_unset=True)) == action_of(decision)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (
            {"action": "web-search", "arguments": {"query": "q", "max_results": 50}},
            ("action", "web-search", "arguments", "max_results"),
        ),
        ({"action": "web-search", "arguments": {}}, ("action", "web-search", "arguments", "query")),
        (
            {"action": "final_answer", "answer": {"summary": "s", "confidence": 1.5}},
            ("action", "final_answer", "answer", "confidence"),
        ),
        ({"action": "delete-everything"}, ("action",)),
        (
            {"action": "web-search", "arguments": {"query": "q"}, "unexpected": 1},
            ("action", "web-search", "unexpected"),
        ),
    ],
)
def test_invalid_decisions_point_at_the_offending_field(payload: dict, where: tuple) -> None:
    with pytest.raises(ValidationError) as caught:
        Decision.model_validate({"action": payload})
    assert tuple(caught.value.errors()[0]["loc"]) == where


def test_the_schema_names_every_choice_for_the_model() -> None:
    schema = Decision.model_json_schema()
    actions = {
        d["properties"]["action"]["const"]
        for d in schema["$defs"].values()
        if "action" in d.get("properties", {})
    }
    assert actions == {"web-search", "delegate:fact-checker", "final_answer"}


def test_a_decision_needs_a_final_answer() -> None:
    with pytest.raises(ValueError, match="final_answer"):
        build_decision_model("x", CHOICES[:1])


SCHEMA = {
    "type": "object",
    "required": ["topic"],
    "properties": {
        "topic": {"type": "string"},
        "max": {"type": "integer", "default": 3, "maximum": 5},
        "options": {"type": "object", "properties": {"depth": {"type": "integer", "default": 1}}},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"w": {"type": "number", "default": 0.5}}},
        },
    },
}


def test_defaults_are_applied_recursively_without_touching_given_values() -> None:
    value = {"topic": "x", "options": {}, "items": [{}, {"w": 2}]}
    assert apply_defaults(SCHEMA, value) == {
        "topic": "x",
        "max": 3,
        "options": {"depth": 1},
        "items": [{"w": 0.5}, {"w": 2}],
    }
    assert value == {"topic": "x", "options": {}, "items": [{}, {"w": 2}]}  # the caller's data is not changed


def test_check_inputs_reports_every_problem_with_its_path() -> None:
    with pytest.raises(InputError) as caught:
        check_inputs(SCHEMA, {"max": 9, "options": {"depth": "deep"}}, unit="Agent/a")
    message = str(caught.value)
    assert message.startswith("Agent/a: invalid inputs: ")
    assert (
        '"topic" is a required property' in message and "max: 9 is greater than the maximum of 5" in message
    )
    assert "options/depth" in message
