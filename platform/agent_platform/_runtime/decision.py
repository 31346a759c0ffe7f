"""The agent's structured decision: one pydantic model per agent, asked of the model at every step.

    AgentDecision(thought: str, action: CallTool_x | CallTool_y | Delegate_z | FinalAnswer)

The action is a union discriminated on `action` (the tool's name, `delegate:<agent>` or
`final_answer`), and each variant carries that tool's own argument model, the delegate's input
model, or the agent's output model. So the tool arguments are validated against *that* tool's
schema, and a validation error goes back to the model to fix (the provider's bounded re-asks).
The source article confused the action name with the tool name; here they are one field with
one meaning."""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

FINAL_ANSWER = "final_answer"
DELEGATE_PREFIX = "delegate:"


@dataclass(frozen=True)
class ActionChoice:
    """One thing the agent may do, with the model describing its payload."""

    name: str  # tool name, agent name (for delegates), or "final_answer"
    kind: Literal["tool", "delegate", "final_answer"]
    description: str
    payload: type[BaseModel] | None  # arguments / delegate inputs / answer; None: free text answer

    @property
    def action(self) -> str:
        if self.kind == "delegate":
            return DELEGATE_PREFIX + self.name
        return self.name


class DecisionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _class_name(prefix: str, name: str) -> str:
    return prefix + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def build_decision_model(agent: str, choices: list[ActionChoice]) -> type[BaseModel]:
    """The response model for one agent's step."""
    if not any(c.kind == "final_answer" for c in choices):
        raise ValueError("an agent decision needs a final_answer choice")
    variants: list[type[BaseModel]] = []
    for choice in choices:
        literal: Any = Literal.__getitem__(choice.action)
        fields: dict[str, Any] = {"action": (literal, Field(description=choice.description))}
        if choice.kind == "tool":
            payload = choice.payload or create_model(_class_name("Args", choice.name), __base__=DecisionBase)
            fields["arguments"] = (payload, Field(description=f"Arguments for {choice.name}."))
            prefix = "CallTool"
        elif choice.kind == "delegate":
            payload = choice.payload or create_model(_class_name("Task", choice.name), __base__=DecisionBase)
            fields["task"] = (payload, Field(description=f"The task for agent {choice.name}."))
            prefix = "Delegate"
        else:
            answer_type: Any = choice.payload if choice.payload is not None else str
            fields["answer"] = (answer_type, Field(description="The final answer."))
            prefix = "Final"
        variants.append(
            create_model(
                _class_name(prefix, choice.name), __base__=DecisionBase, __doc__=choice.description, **fields
            )
        )
    union: Any = (
        variants[0]
        if len(variants) == 1
        else Annotated[functools.reduce(operator.or_, variants), Field(discriminator="action")]
    )
    return create_model(
        _class_name("Decision", agent),
        __base__=DecisionBase,
        __doc__=f"The next step of agent {agent}: call one tool, delegate to one agent, or give the final answer.",
        thought=(str, Field(default="", description="Brief reasoning for this step (not shown to users).")),
        action=(union, Field(description="What to do next.")),
    )


def action_of(decision: BaseModel) -> tuple[str, str, Any]:
    """(kind, name, payload as plain data) of a decision: kind is tool | delegate | final_answer."""
    return action_of_dump(decision.model_dump(mode="json", exclude_unset=True))


def action_of_dump(dumped: dict[str, Any]) -> tuple[str, str, Any]:
    """`action_of` for a decision already dumped with `model_dump(mode="json", exclude_unset=True)`
    (the loop records the dump in the conversation, so it is made once per step). Only what the
    model gave is in it: an optional field it left out is absent, not null (a tool's JSON Schema
    or an output schema may reject null where a field is merely optional)."""
    action = dumped["action"]
    tag: str = action["action"]
    if tag == FINAL_ANSWER:
        return "final_answer", FINAL_ANSWER, action.get("answer")
    if tag.startswith(DELEGATE_PREFIX):
        return "delegate", tag.removeprefix(DELEGATE_PREFIX), action.get("task", {})
    return "tool", tag, action.get("arguments", {})
