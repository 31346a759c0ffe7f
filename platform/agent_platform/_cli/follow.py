"""`platform run --follow`: a run's steps as they happen, as a tree on stderr.

The tree is built from the run's events in the run store (`_runtime/events.py`), the same events
the HTTP API streams: the run, its iterations or pipeline steps, and under each the model calls
(tokens, cost) and tool calls (outcome), sub-runs and hand-offs under the step that started
them, guardrail verdicts and approval requests where they happened. `follow_run` polls the store
and redraws the tree until the run settles; in a terminal it updates in place (rich's `Live`),
elsewhere it is printed once, when the run has settled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from agent_platform._runstore.events import StoredEvent
from agent_platform._runtime import events as ev

READ_BATCH = 1000

POLL_FIRST_S = 0.02
POLL_MAX_S = 0.5


def _tokens(input_tokens: int, output_tokens: int, cost_usd: float) -> str:
    text = f"tokens {input_tokens:,}/{output_tokens:,}"
    return text + (f", ${cost_usd:.4f}" if cost_usd else "")


class RunTree:
    """The tree of one run (and everything under it), built event by event."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.tree = Tree(Text(f"run {run_id}", style="bold"))
        self._runs: dict[str, Tree] = {run_id: self.tree}
        self._run_labels: dict[str, str] = {run_id: f"run {run_id}"}
        self._open_step: dict[str, Tree] = {}  # per run: the step its events now go under
        self._steps: dict[tuple[str, str], Tree] = {}
        self._calls: dict[str, Tree] = {}
        self._labels: dict[str, str] = {}
        self.last_seq = 0
        self.ended: str | None = None  # how the followed run ended, once it has

    def _parent_node(self, run_id: str) -> Tree:
        return self._open_step.get(run_id) or self._runs.get(run_id) or self.tree

    def add(self, stored: StoredEvent) -> None:
        self.last_seq = max(self.last_seq, stored.seq)
        try:
            event = ev.parse_event(stored.kind, stored.data)
        except ValueError:  # a kind this version does not know (a newer replica wrote it)
            return
        run_id = stored.run_id
        match event:
            case ev.RunStarted():
                title = f"{event.unit}  {run_id}"
                if run_id in self._runs:
                    self._runs[run_id].label = Text(title, style="bold")
                else:
                    parent = event.parent_run_id or ev.parent_of(run_id) or self.run_id
                    self._runs[run_id] = self._parent_node(parent).add(Text(title, style="bold"))
                self._run_labels[run_id] = title
            case ev.RunFinished() | ev.RunError():
                node = self._runs.get(run_id)
                if node is None:
                    return
                outcome = event.outcome if isinstance(event, ev.RunFinished) else "failed"
                ok = outcome == "completed"
                label = Text(self._run_labels.get(run_id, run_id), style="bold")
                label.append(f"  {_tokens(event.input_tokens, event.output_tokens, event.cost_usd)}  ")
                label.append(outcome, style="green" if ok else "red")
                if event.error and outcome not in ("completed", "needs_approval"):
                    label.append(f": {event.error[:100]}", style="red")
                node.label = label
                self._open_step.pop(run_id, None)
                if run_id == self.run_id:
                    self.ended = outcome
            case ev.StepStarted():
                node = self._runs.get(run_id, self.tree).add(Text(event.step))
                self._steps[(run_id, event.step)] = node
                self._open_step[run_id] = node
            case ev.StepFinished():
                node = self._steps.get((run_id, event.step))
                if node is not None:
                    state, style = ("ok", "green") if event.ok else ("error", "red")
                    if event.paused:
                        state, style = "waiting for approval", "yellow"
                    node.label = Text(event.step).append(f"  {state}", style)
                self._open_step.pop(run_id, None)
            case ev.ModelCallStarted():
                title = f"chat {event.model} ({event.provider})"
                self._labels[event.call_id] = title
                self._calls[event.call_id] = self._parent_node(run_id).add(Text(title + "  …"))
            case ev.ModelCallFinished():
                node = self._calls.get(event.call_id)
                if node is not None:
                    label = Text(self._labels.get(event.call_id, "chat"))
                    label.append(f"  {_tokens(event.input_tokens, event.output_tokens, event.cost_usd)}  ")
                    label.append(
                        "ok" if event.ok else f"error {event.error_type}", "green" if event.ok else "red"
                    )
                    node.label = label
            case ev.ToolCallStarted():
                self._calls[event.call_id] = self._parent_node(run_id).add(Text(f"tool {event.tool}  …"))
            case ev.ToolCallFinished():
                node = self._calls.get(event.call_id)
                if node is not None:
                    style = {"ok": "green", "error": "red"}.get(event.outcome, "yellow")
                    label = Text(f"tool {event.tool}  ")
                    label.append(event.outcome.replace("_", " "), style)
                    if event.error_type:
                        label.append(f" ({event.error_type})", style)
                    if event.cached:
                        label.append("  cached")
                    node.label = label
            case ev.GuardrailVerdict():
                self._parent_node(run_id).add(
                    Text(f"guardrail {event.guardrail} ({event.stage}): {event.verdict}", style="yellow")
                )
            case ev.ApprovalRequested():
                self._parent_node(event.asking_run_id).add(
                    Text(f"waiting for approval: call {event.call_key} of tool {event.tool}", style="yellow")
                )
            case ev.CheckpointWritten():
                pass  # frequent and not a step: `platform result --checkpoint` shows the state


async def follow_run(
    read: Callable[[int], Awaitable[list[StoredEvent]]],
    settled: Callable[[], Awaitable[bool]],
    run_id: str,
    *,
    console: Console | None = None,
) -> RunTree:
    """Show `run_id`'s tree until `settled()` says the run has settled and every event stored
    before that has been read (`read(after)` gives the events numbered after `after`)."""
    view = RunTree(run_id)
    out = console or Console(stderr=True)
    if not out.is_terminal:  # a log or a pipe: the tree once, when the run has settled
        await _poll(view, read, settled)
        out.print(view.tree)
        return view
    with Live(view.tree, console=out, refresh_per_second=8, transient=False):
        await _poll(view, read, settled)
    return view


async def _poll(
    view: RunTree,
    read: Callable[[int], Awaitable[list[StoredEvent]]],
    settled: Callable[[], Awaitable[bool]],
) -> None:
    delay = POLL_FIRST_S
    while True:
        # The status first: the events a run stores before it settles are all there after it.
        done = await settled()
        while True:
            found = await read(view.last_seq)
            for stored in found:
                view.add(stored)
            if len(found) < READ_BATCH:
                break
        if done:
            return
        if found:
            delay = POLL_FIRST_S
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL_MAX_S)


def store_reader(store: Any, run_id: str) -> Callable[[int], Awaitable[list[StoredEvent]]]:
    async def read(after: int) -> list[StoredEvent]:
        found: list[StoredEvent] = await store.read_events(run_id, after=after, limit=READ_BATCH)
        return found

    return read
