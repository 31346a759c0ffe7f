"""Approval of tool calls (and of tasks for remote agents, which are decided as tool calls named
`RemoteAgent/<name>` whose arguments are the task): what a person is asked, and what happens when
nobody can answer.

The tool executor is the one place that decides whether a call needs approval (`_authorise`):
its tool requires it, or the run's context is untrusted and its policy says so. It then looks for
a person's decision about that exact call (`RunState.approvals`, by `ApprovalRequest.key`), else
asks the runtime's `Approver` (`--approve-all`). With neither, the call is not made and
`ApprovalRequired` stops the run with the outcome `needs_approval`, naming the call: a call that
needs a person must never turn into a tool error the model works around while the run
"completes". A run driven by a `DurableRunner` then pauses in the run store (`waiting_approval`)
and resumes at that call once a person has decided (`platform approve` / `platform deny`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One call waiting for a person's yes or no, and why it needs one."""

    tool: str
    description: str
    arguments: Mapping[str, Any]
    run_id: str
    reasons: tuple[str, ...] = ()
    # The untrusted sources in the run's context when the call was decided (empty: none).
    untrusted_sources: tuple[str, ...] = ()
    # The hand-offs between the run that was asked and the call (outermost first).
    via: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """The call's identity for a decision: its tool and exact arguments. A decision about one
        call never covers another (other arguments are another call)."""
        canonical = json.dumps(
            {"tool": self.tool, "arguments": self.arguments},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=repr,
        )
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def describe(self) -> str:
        where = f" (in {' -> '.join(self.via)})" if self.via else ""
        why = list(self.reasons) or ["it requires approval"]
        if self.untrusted_sources and not any("untrusted content" in r for r in why):
            why.append(f"untrusted content ({', '.join(self.untrusted_sources)}) is in the run's context")
        # A task for a remote agent is asked about as a call named `RemoteAgent/<name>`.
        what = (
            f"task for {self.tool}" if self.tool.startswith("RemoteAgent/") else f"call of tool '{self.tool}'"
        )
        return f"{what}{where} needs approval: {'; '.join(why)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "call_key": self.key,
            "arguments": dict(self.arguments),
            "run_id": self.run_id,
            "reasons": list(self.reasons),
            "untrusted_sources": list(self.untrusted_sources),
            "via": list(self.via),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        return cls(
            tool=str(data.get("tool", "?")),
            description="",
            arguments=dict(data.get("arguments") or {}),
            run_id=str(data.get("run_id", "")),
            reasons=tuple(map(str, data.get("reasons") or ())),
            untrusted_sources=tuple(map(str, data.get("untrusted_sources") or ())),
            via=tuple(map(str, data.get("via") or ())),
        )

    def handed_through(self, unit: str) -> ApprovalRequest:
        """The same request as seen by the run that handed work to `unit`."""
        return ApprovalRequest(
            self.tool,
            self.description,
            self.arguments,
            self.run_id,
            self.reasons,
            self.untrusted_sources,
            (unit, *self.via),
        )


Approver = Callable[[ApprovalRequest], Awaitable[bool]]


class ApprovalRequired(Exception):
    """A call needs approval and no approver is configured: the call was not made and the run
    ends with outcome `needs_approval` (not a tool error the model could work around)."""

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(
            f"{request.describe()}; no approver is configured, so it was not made "
            "(`platform run --approve-all` approves every call)"
        )
        self.request = request
