"""Finished spans as a tree, for `platform run --trace`.

Each span is one line, indented under its parent and aligned in columns:

    invoke_agent researcher        12.3 ms  [Σ tokens 1,204/310, $0.0081]  ERROR guardrail_halt: …
    ├─ iteration 1                  5.1 ms                                  ok
    │  ├─ chat sonnet (scripted)    3.0 ms  [tokens 602/150, $0]            ok
    │  └─ execute_tool web_search   1.2 ms                                  ERROR ToolTimeout: …
    │     └─ • guardrail.decision injection (prompt_injection) → redact at tool_output: …
    └─ • loop_detected web_search [web_search → fetch] (2 repeats) → halt

A span that did not succeed shows `ERROR`, its `error.type` (an exception's class, or the outcome
of a run that ended without completing) and its description; one cancelled, `ERROR CancelledError`.

Children and events (guardrail hits, loop detection) are ordered by time, so the tree reads as the
run happened. Token counts and cost are the model spans' own attributes (the provider's usage);
run, step and task spans without totals of their own show the sum over the model calls beneath
them, marked Σ. The output depends only on the spans given (ids never appear), so it can be
snapshot-tested. `rich_span_tree` builds the same tree as a `rich.tree.Tree` (rich imported lazily).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import StatusCode

from agent_platform._runtime.tracing import names as t

if TYPE_CHECKING:
    from rich.tree import Tree

__all__ = ["SpanNode", "build_span_forest", "format_duration", "render_span_tree", "rich_span_tree"]

# Spans that stand for a unit of work whose model usage is worth summing when they carry none.
_AGGREGATING_ATTRS = (t.AP_UNIT_KIND, t.AP_STEP_NAME, t.AP_TASK_ID, t.AP_COMPACTION_TOKENS_BEFORE)
# Events the tree leaves out: the status line already says what failed, and captured content is long.
_HIDDEN_EVENTS = frozenset({"exception", t.EVENT_CONTENT})
_MAX_VALUE_CHARS = 60
_MAX_NAME_COLUMN = 64


@dataclass(slots=True)
class SpanNode:
    span: ReadableSpan
    children: list[SpanNode] = field(default_factory=list)


def _order_key(span: ReadableSpan) -> tuple[int, str, int]:
    ctx = span.context
    return (span.start_time or 0, span.name, ctx.span_id if ctx is not None else 0)


def build_span_forest(spans: Iterable[ReadableSpan]) -> list[SpanNode]:
    """Nodes linked by parentage; a span whose parent is not among `spans` becomes a root. Roots
    and children are ordered by start time (then name and span id, so ties are deterministic)."""
    nodes: dict[tuple[int, int], SpanNode] = {}
    ordered = sorted(spans, key=_order_key)
    for span in ordered:
        ctx = span.context
        if ctx is not None:
            nodes[(ctx.trace_id, ctx.span_id)] = SpanNode(span)
    roots: list[SpanNode] = []
    for span in ordered:
        ctx = span.context
        if ctx is None:
            roots.append(SpanNode(span))
            continue
        node = nodes[(ctx.trace_id, ctx.span_id)]
        parent = span.parent
        parent_node = nodes.get((ctx.trace_id, parent.span_id)) if parent is not None else None
        if parent_node is None:
            roots.append(node)
        else:
            parent_node.children.append(node)
    return roots


# --- formatting ------------------------------------------------------------------------------------


def format_duration(ns: int) -> str:
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.1f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def _format_cost(cost: float) -> str:
    if cost == 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    return f"${cost:.4f}"


def _int_attr(attrs: Any, key: str) -> int | None:
    value = attrs.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _own_usage(span: ReadableSpan) -> tuple[int | None, int | None, float | None]:
    attrs = span.attributes or {}
    cost = attrs.get(t.AP_COST_USD)
    return (
        _int_attr(attrs, t.GEN_AI_USAGE_INPUT_TOKENS),
        _int_attr(attrs, t.GEN_AI_USAGE_OUTPUT_TOKENS),
        float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


def _model_usage_below(node: SpanNode) -> tuple[int, int, float, int]:
    """Sum of the model (`chat`) spans' usage in the subtree: input, output, cost, call count."""
    tin = tout = calls = 0
    cost = 0.0
    stack = list(node.children)
    while stack:
        current = stack.pop()
        attrs = current.span.attributes or {}
        if attrs.get(t.GEN_AI_OPERATION_NAME) == "chat":
            i, o, c = _own_usage(current.span)
            tin += i or 0
            tout += o or 0
            cost += c or 0.0
            calls += 1
        stack.extend(current.children)
    return tin, tout, cost, calls


def _usage_text(node: SpanNode) -> str:
    tin, tout, cost = _own_usage(node.span)
    marker = ""
    if tin is None and tout is None and cost is None:
        attrs = node.span.attributes or {}
        if not any(key in attrs for key in _AGGREGATING_ATTRS):
            return ""
        sin, sout, scost, calls = _model_usage_below(node)
        if calls == 0:
            return ""
        tin, tout, cost, marker = sin, sout, scost, "Σ "
    parts = []
    if tin is not None or tout is not None:
        parts.append(f"tokens {tin or 0:,}/{tout or 0:,}")
    if cost is not None:
        parts.append(_format_cost(cost))
    return f"[{marker}{', '.join(parts)}]"


def _status_text(span: ReadableSpan) -> str:
    """`ok`, or `ERROR <error.type>: <description>` (the description without the type it often
    starts with, `TypeError: …`, so the type is not said twice)."""
    attrs = span.attributes or {}
    if span.status.status_code is not StatusCode.ERROR:
        # Spans written before cancellations were errors carry only the mark.
        return "cancelled" if attrs.get(t.AP_CANCELLED) else "ok"
    error_type = attrs.get(t.ERROR_TYPE)
    description = span.status.description or ""
    if not isinstance(error_type, str) or not error_type:
        return f"ERROR: {description}" if description else "ERROR"
    if description == error_type:
        description = ""
    elif description.startswith(f"{error_type}: "):
        description = description[len(error_type) + 2 :]
    return f"ERROR {error_type}: {description}" if description else f"ERROR {error_type}"


def _label(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    return f"{span.name} (scripted)" if attrs.get(t.AP_MODEL_SCRIPTED) else span.name


def _value_text(value: Any) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, tuple | list) else str(value)
    text = " ".join(text.split())  # one line per event, whatever the message holds
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _event_text(event: Event) -> str:
    attrs = event.attributes or {}
    if event.name == t.EVENT_GUARDRAIL:
        text = (
            f"{event.name} {attrs.get(t.AP_GUARDRAIL_NAME, '?')} ({attrs.get(t.AP_GUARDRAIL_TYPE, '?')})"
            f" → {attrs.get(t.AP_GUARDRAIL_VERDICT, '?')}"
        )
        if t.AP_GUARDRAIL_STAGE in attrs:
            text += f" at {_value_text(attrs[t.AP_GUARDRAIL_STAGE])}"
        if t.AP_GUARDRAIL_REASON in attrs:
            text += f": {_value_text(attrs[t.AP_GUARDRAIL_REASON])}"
        return text
    if event.name == t.EVENT_LOOP_DETECTED:
        pattern = attrs.get(t.AP_LOOP_PATTERN) or ()
        cycle = " → ".join(str(p) for p in pattern) if isinstance(pattern, tuple | list) else str(pattern)
        text = f"{event.name} {attrs.get(t.AP_LOOP_TOOL, '?')}"
        if cycle:
            text += f" [{cycle}]"
        if t.AP_LOOP_REPEATS in attrs:
            text += f" ({_value_text(attrs[t.AP_LOOP_REPEATS])} repeats)"
        return text + f" → {attrs.get(t.AP_LOOP_ACTION, '?')}"
    if not attrs:
        return event.name
    return event.name + " " + ", ".join(f"{k}={_value_text(v)}" for k, v in attrs.items())


# --- layout ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    prefix: str
    node: SpanNode | None  # None: an event line
    text: str  # the label, or the event's text


def _items(node: SpanNode, show_events: bool) -> list[tuple[int, int, int, SpanNode | Event]]:
    """A node's children and visible events, merged by time (events first on a tie)."""
    items: list[tuple[int, int, int, SpanNode | Event]] = []
    if show_events:
        for i, event in enumerate(node.span.events):
            if event.name not in _HIDDEN_EVENTS:
                items.append((event.timestamp, 0, i, event))
    for i, child in enumerate(node.children):
        items.append((child.span.start_time or 0, 1, i, child))
    items.sort(key=lambda item: item[:3])
    return items


def _layout(roots: Sequence[SpanNode], show_events: bool, ascii: bool) -> list[_Row]:
    tee, elbow, pipe, blank = ("|- ", "`- ", "|  ", "   ") if ascii else ("├─ ", "└─ ", "│  ", "   ")
    bullet = "* " if ascii else "• "
    rows: list[_Row] = []

    def walk(node: SpanNode, lead: str, own: str) -> None:
        rows.append(_Row(lead + own, node, _label(node.span)))
        child_lead = lead + (pipe if own == tee else blank if own else "")
        items = _items(node, show_events)
        for index, (_, _, _, item) in enumerate(items):
            last = index == len(items) - 1
            if isinstance(item, SpanNode):
                walk(item, child_lead, elbow if last else tee)
            else:
                rows.append(_Row(child_lead + (elbow if last else tee) + bullet, None, _event_text(item)))

    for root in roots:
        walk(root, "", "")
    return rows


def render_span_tree(
    spans: Iterable[ReadableSpan],
    *,
    durations: bool = True,
    show_events: bool = True,
    ascii: bool = False,
) -> str:
    """The spans as an indented tree: `name  duration  [tokens in/out, cost]  status` per span,
    events as sub-lines. Several traces give several trees, one after the other."""
    roots = build_span_forest(spans)
    rows = _layout(roots, show_events, ascii)
    span_rows = [row for row in rows if row.node is not None]
    if not span_rows:
        return ""
    name_width = min(_MAX_NAME_COLUMN, max(len(row.prefix) + len(row.text) for row in span_rows))
    cells: list[tuple[str, str, str]] = []
    for row in span_rows:
        assert row.node is not None
        span = row.node.span
        duration = ""
        if durations and span.start_time is not None and span.end_time is not None:
            duration = format_duration(span.end_time - span.start_time)
        cells.append((duration, _usage_text(row.node), _status_text(span)))
    duration_width = max(len(c[0]) for c in cells)
    usage_width = max(len(c[1]) for c in cells)

    lines: list[str] = []
    cell_iter = iter(cells)
    for row in rows:
        if row.node is None:
            lines.append(row.prefix + row.text)
            continue
        duration, usage, status = next(cell_iter)
        columns = [(row.prefix + row.text).ljust(name_width)]
        if duration_width:
            columns.append(duration.rjust(duration_width))
        if usage_width:
            columns.append(usage.ljust(usage_width))
        columns.append(status)
        lines.append("  ".join(columns))
    return "\n".join(lines) + "\n"


def rich_span_tree(
    spans: Iterable[ReadableSpan], *, durations: bool = True, show_events: bool = True
) -> Tree:
    """The same tree as a `rich.tree.Tree` (one per trace under a common root label)."""
    from rich.text import Text
    from rich.tree import Tree

    def label(node: SpanNode) -> Text:
        span = node.span
        text = Text(_label(span), style="bold" if node.children else "")
        if durations and span.start_time is not None and span.end_time is not None:
            text.append(f"  {format_duration(span.end_time - span.start_time)}", style="dim")
        usage = _usage_text(node)
        if usage:
            text.append(f"  {usage}", style="cyan")
        status = _status_text(span)
        text.append(
            f"  {status}",
            style="red" if status.startswith("ERROR") else "yellow" if status != "ok" else "green",
        )
        return text

    def add(parent: Tree, node: SpanNode) -> None:
        branch = parent.add(label(node))
        for _, _, _, item in _items(node, show_events):
            if isinstance(item, SpanNode):
                add(branch, item)
            else:
                branch.add(Text("• " + _event_text(item), style="magenta"))

    tree = Tree(Text("trace", style="dim"), guide_style="dim")
    for root in build_span_forest(spans):
        add(tree, root)
    return tree
