"""Checkpoints of an agent run: what a replica needs to continue a run another one started.

After every step the agent loop hands its state to `Services.checkpoint`; the in-process runtime
ignores it, the Ray host writes it to the run store (fenced by the attempt). On resume the host
puts the loaded checkpoint in `RunState.resume_from` and the loop continues from it: the
conversation (Messages-API blocks), the trajectory, the counters (iterations, tool calls,
sub-runs, so sub-run ids and idempotency keys come out the same), usage and cost, the position of
each scripted model in its script (a deterministic replay resumes where it was), and the run's
taint: a run that had read untrusted content is still under its `untrusted_context` policy after
a resume. A checkpoint written before taint was recorded counts as tainted if its conversation
holds any tool result or delegate answer.

Not restored: guardrail windows (loop detection starts a fresh window after a resume) and the
working-memory token estimate of messages (re-estimated)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_platform._runtime.messages import Block, Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models.base import Usage

CHECKPOINT_VERSION = 1
# The taint of a resumed run whose checkpoint predates taint tracking and holds tool results.
UNRECORDED_TAINT = "checkpoint:unrecorded"


class CheckpointError(ValueError):
    """A stored checkpoint this version cannot read."""


def block_from_api(data: Mapping[str, Any]) -> Block:
    kind = data.get("type")
    if kind == "text":
        return TextBlock(str(data["text"]))
    if kind == "tool_use":
        return ToolUseBlock(str(data["id"]), str(data["name"]), dict(data["input"]))
    if kind == "tool_result":
        return ToolResultBlock(
            str(data["tool_use_id"]), str(data["content"]), bool(data.get("is_error", False))
        )
    raise CheckpointError(f"unknown content block type {kind!r}")


def message_from_api(data: Mapping[str, Any]) -> Message:
    role = data.get("role")
    if role not in ("user", "assistant"):
        raise CheckpointError(f"unknown message role {role!r}")
    content = data.get("content")
    blocks: list[Block] = (
        [TextBlock(content)] if isinstance(content, str) else [block_from_api(b) for b in content or []]
    )
    return Message(role, blocks)


@dataclass
class AgentCheckpoint:
    messages: list[Message]
    trajectory: list[dict[str, Any]]
    iterations: int
    tool_calls: int
    sub_runs: int
    usage: Usage
    cost_usd: float
    model_cursors: dict[str, dict[str, int]] = field(default_factory=dict)  # model name -> key -> position
    taint: list[str] = field(default_factory=list)  # TaintState.sources

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "messages": [m.to_api() for m in self.messages],
            **self._rest(),
        }

    def _rest(self) -> dict[str, Any]:
        return {
            "trajectory": self.trajectory,
            "iterations": self.iterations,
            "tool_calls": self.tool_calls,
            "sub_runs": self.sub_runs,
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
            "cost_usd": self.cost_usd,
            "model_cursors": self.model_cursors,
            "taint": self.taint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentCheckpoint:
        if data.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint version {data.get('version')!r}, expected {CHECKPOINT_VERSION}"
            )
        usage = data.get("usage") or {}
        messages = [message_from_api(m) for m in data.get("messages", [])]
        taint = data.get("taint")
        if taint is None:  # written before taint was recorded: assume what it may have read
            taint = [UNRECORDED_TAINT] if any(m.tool_result_ids for m in messages) else []
        return cls(
            messages=messages,
            trajectory=list(data.get("trajectory", [])),
            iterations=int(data.get("iterations", 0)),
            tool_calls=int(data.get("tool_calls", 0)),
            sub_runs=int(data.get("sub_runs", 0)),
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            cost_usd=float(data.get("cost_usd", 0.0)),
            model_cursors={
                str(k): {str(a): int(b) for a, b in v.items()}
                for k, v in (data.get("model_cursors") or {}).items()
            },
            taint=[str(source) for source in taint],
        )


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text.encode("utf-8")  # lone surrogates cannot be stored: fail here, not in the store
    return text


_HEAD = f'{{"version":{CHECKPOINT_VERSION},"messages":['


class CheckpointEncoder:
    """The compact JSON text of one run's successive checkpoints (`to_json()`, serialised),
    encoding each message once rather than the whole conversation at every step (which is
    quadratic over a run).

    Messages are never changed once a step has appended them; working-memory compaction replaces
    the head of the conversation with a new summary message and keeps the other messages as they
    were. So each message's text is kept by identity (with the message, so its id cannot be
    reused while kept) for as long as the latest checkpoint holds it."""

    __slots__ = ("_texts",)

    def __init__(self) -> None:
        self._texts: dict[int, tuple[Message, str]] = {}

    def encode(self, checkpoint: AgentCheckpoint) -> str:
        known = self._texts
        kept: dict[int, tuple[Message, str]] = {}
        parts: list[str] = []
        for message in checkpoint.messages:
            entry = known.get(id(message))
            if entry is None:
                entry = (message, _dumps(message.to_api()))
            kept[id(message)] = entry
            parts.append(entry[1])
        self._texts = kept
        return f"{_HEAD}{','.join(parts)}],{_dumps(checkpoint._rest())[1:]}"
