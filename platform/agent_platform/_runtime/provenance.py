"""Where the content of a run came from, and whether content the run cannot trust has entered its
context (its *taint*).

A model cannot tell data from instructions, so a run that has read an untrusted web page, email or
ticket may be following instructions someone else wrote. The platform cannot know whether it is;
it can know *that* it might be, from where content came from rather than from what it says:

* every block the agent loop adds to a conversation, and every value a pipeline step produces,
  carries a `Provenance`: its `Origin` (the user's inputs, a tool, long-term memory, a delegate's
  or a pipeline step's result) and its `Trust`;
* a run's `TaintState` records each untrusted source that reached its context. It only grows; it
  flows into sub-runs (a delegate starts with its caller's taint) and back out of them (a tainted
  delegate's answer taints its caller), and it is checkpointed with the run.

What a tainted run may still do is its `ContextPolicy` (_spec/policy.py), enforced where tools
are called (`ToolExecutor`): the decision never depends on what the content says, so it holds
when a model obeys every instruction it reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from agent_platform._spec.policy import Trust

__all__ = ["USER_INPUT", "Origin", "Provenance", "TaintState", "Trust"]


class Origin(StrEnum):
    USER = "user"  # the run's inputs, from whoever started it
    TOOL = "tool"
    MEMORY = "memory"  # long-term memory recalled into the context
    DELEGATE = "delegate"  # another agent's answer to this run's hand-off
    STEP = "step"  # an earlier pipeline step's output (from a sub-run)


@dataclass(frozen=True, slots=True)
class Provenance:
    origin: Origin
    trust: Trust
    source: str = ""  # the tool, memory layer, delegate agent or step

    @property
    def label(self) -> str:
        """`tool:web-search`, `memory:knowledge`, `delegate:fact-checker`, `user`."""
        return f"{self.origin.value}:{self.source}" if self.source else self.origin.value

    @property
    def untrusted(self) -> bool:
        return self.trust is Trust.UNTRUSTED


USER_INPUT = Provenance(Origin.USER, Trust.TRUSTED)


class TaintState:
    """The untrusted sources that have reached one run's context, in the order they first did.
    Marking is a dict insertion (O(1) per step); the state only grows."""

    __slots__ = ("_sources", "tainted")

    def __init__(self, sources: Iterable[str] = ()) -> None:
        self._sources: dict[str, None] = dict.fromkeys(sources)
        # Read at every tool call: a plain attribute, kept in step with `_sources`.
        self.tainted = bool(self._sources)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def admit(self, provenance: Provenance) -> None:
        """Content from `provenance` entered the context."""
        if provenance.trust is Trust.UNTRUSTED:
            self.mark(provenance.label)

    def mark(self, label: str) -> None:
        """Untrusted content from `label` (a `Provenance.label`) entered the context."""
        self._sources.setdefault(label)
        self.tainted = True

    def absorb(self, sources: Iterable[str]) -> None:
        """Sources a sub-run's content brings with it."""
        for source in sources:
            self.mark(source)

    def copy(self) -> TaintState:
        return TaintState(self._sources)

    def describe(self, limit: int = 4) -> str:
        shown = list(self._sources)[:limit]
        more = len(self._sources) - len(shown)
        return ", ".join(shown) + (f" and {more} more" if more > 0 else "")

    def __repr__(self) -> str:
        return f"TaintState({list(self._sources)!r})"
