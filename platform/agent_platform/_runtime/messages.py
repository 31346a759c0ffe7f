"""Conversation types that map one-to-one onto the Anthropic Messages API.

There are only two roles, `user` and `assistant`; a tool call is a `tool_use` block in an assistant
message and its result a `tool_result` block in the next user message (the Messages API has no
`tool` role). Dataclasses with slots: one step allocates a few of these, so they stay cheap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agent_platform._runtime.provenance import Provenance

Role = Literal["user", "assistant"]


@dataclass(slots=True)
class TextBlock:
    text: str
    # Where the text came from when the run did not write it itself (the user's task, recalled
    # memory); None for the model's own words and the platform's. Not sent to the provider.
    provenance: Provenance | None = field(default=None, compare=False)

    def to_api(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(slots=True)
class ToolUseBlock:
    id: str
    name: str
    input: dict[str, Any]

    def to_api(self) -> dict[str, Any]:
        return {"type": "tool_use", "id": self.id, "name": self.name, "input": self.input}


@dataclass(slots=True)
class ToolResultBlock:
    tool_use_id: str
    content: str
    is_error: bool = False
    # Where the content came from (a tool, a delegate), with its trust. Not sent to the provider.
    provenance: Provenance | None = field(default=None, compare=False)

    def to_api(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": self.tool_use_id,
            "content": self.content,
        }
        if self.is_error:
            block["is_error"] = True
        return block


Block = TextBlock | ToolUseBlock | ToolResultBlock


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Block] = field(default_factory=list)
    # Tokens this message costs when sent, when known from the provider's usage (else estimated).
    tokens: int | None = None

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", [TextBlock(text)])

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls("assistant", [TextBlock(text)])

    @property
    def tool_use_ids(self) -> list[str]:
        return [b.id for b in self.content if isinstance(b, ToolUseBlock)]

    @property
    def tool_result_ids(self) -> list[str]:
        return [b.tool_use_id for b in self.content if isinstance(b, ToolResultBlock)]

    def text(self) -> str:
        return "\n".join(b.text for b in self.content if isinstance(b, TextBlock))

    def to_api(self) -> dict[str, Any]:
        return {"role": self.role, "content": [b.to_api() for b in self.content]}


def validate_sequence(messages: list[Message]) -> str | None:
    """Why `messages` would be rejected by the Messages API, or None.

    Rules: the first message is from the user; roles alternate; every tool_use is answered by a
    tool_result with its id in the very next (user) message, and every tool_result answers one."""
    if not messages:
        return "no messages"
    if messages[0].role != "user":
        return "the first message must be from the user"
    for index, message in enumerate(messages):
        if index and messages[index - 1].role == message.role:
            return f"messages {index - 1} and {index} are both from the {message.role}"
        if message.role == "user" and message.tool_result_ids:
            asked = set(messages[index - 1].tool_use_ids) if index else set()
            stray = [i for i in message.tool_result_ids if i not in asked]
            if stray:
                return f"message {index} answers tool_use {stray[0]} that the previous message did not make"
        if message.role == "assistant" and message.tool_use_ids:
            answer = messages[index + 1] if index + 1 < len(messages) else None
            answered = set(answer.tool_result_ids) if answer is not None else set()
            missing = [i for i in message.tool_use_ids if i not in answered]
            if missing and answer is not None:
                return f"tool_use {missing[0]} in message {index} has no tool_result in the next message"
    return None
