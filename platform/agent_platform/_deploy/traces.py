"""Reading back the spans that a deployment's actors wrote (JSON lines, one file shared by the
actors of one machine) as one tree per trace — a run is one trace, whichever nodes it crossed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags


def read_spans(path: Path, trace_id: str | None = None) -> list[dict[str, Any]]:
    """The span dicts in `path` (of one trace when `trace_id` is given); torn lines are skipped."""
    spans = []
    try:
        with path.open(encoding="utf-8") as file:
            for line in file:
                try:
                    span = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line being appended by another process right now
                if trace_id is None or span.get("trace_id") == trace_id:
                    spans.append(span)
    except FileNotFoundError:
        return []
    return spans


def to_readable(span: dict[str, Any]) -> ReadableSpan:
    trace_id = int(span["trace_id"], 16)
    context = SpanContext(trace_id, int(span["span_id"], 16), True, TraceFlags(1))
    parent = (
        SpanContext(trace_id, int(span["parent_span_id"], 16), True, TraceFlags(1))
        if span.get("parent_span_id")
        else None
    )
    status = span.get("status") or {}
    return ReadableSpan(
        name=span["name"],
        context=context,
        parent=parent,
        resource=Resource.create(span.get("resource") or {}),
        attributes=span.get("attributes") or {},
        events=[
            Event(e["name"], e.get("attributes") or {}, e.get("time_unix_nano"))
            for e in span.get("events", [])
        ],
        kind=SpanKind[span.get("kind", "INTERNAL")],
        status=Status(StatusCode[status.get("code", "UNSET")], status.get("description")),
        start_time=span.get("start_time_unix_nano"),
        end_time=span.get("end_time_unix_nano"),
    )


def iter_readable(path: Path, trace_id: str) -> Iterator[ReadableSpan]:
    for span in read_spans(path, trace_id):
        yield to_readable(span)


def render_trace(path: Path, trace_id: str) -> str:
    from agent_platform._runtime.span_tree import render_span_tree

    spans = list(iter_readable(path, trace_id))
    if not spans:
        return f"(no spans of trace {trace_id} in {path})"
    return f"trace {trace_id} ({len(spans)} spans, from {path})\n" + render_span_tree(spans)
