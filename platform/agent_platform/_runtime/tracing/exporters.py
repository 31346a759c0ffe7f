"""Where the runtime's spans go besides the SDK's own exporters: `MemorySpanExporter` (the spans
`platform run --trace` and tests read) with its lean processor, and `JsonlSpanExporter`, one JSON
object per span appended to a file that several actor processes may share. Each span's line is
one bytes formatting (`_SpanLines`), the same text `to_json(span_to_dict(span))` gives."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from pydantic_core import to_json


class MemorySpanExporter(SpanExporter):
    """The spans kept by `configure_tracing(memory=True)`, with the SDK `InMemorySpanExporter`'s
    API (`get_finished_spans`, `clear`, `export`, `shutdown`). The runtime's processor appends to
    its list directly: one list operation is atomic, so no lock is taken per span."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._stopped = False

    def keep(self, span: ReadableSpan) -> None:
        if not self._stopped:
            self._spans.append(span)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped:
            return SpanExportResult.FAILURE
        self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def get_finished_spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self._spans)

    def clear(self) -> None:
        self._spans.clear()

    def shutdown(self) -> None:
        self._stopped = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class InMemoryProcessor(SpanProcessor):
    """`SimpleSpanProcessor` for the in-memory exporter without what only a network exporter
    needs (suppressing instrumentation around the export, the processor's own metrics): less work
    per span, which matters when `--trace` or the benchmark keeps every span."""

    def __init__(self, exporter: MemorySpanExporter) -> None:
        self._exporter = exporter
        # Where fast spans (always sampled) go without on_end's check (see fast_spans._delivery).
        self.on_end_sampled = exporter.keep

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is not None and ctx.trace_flags.sampled:
            self._exporter.keep(span)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# --- the JSONL exporter ----------------------------------------------------------------------------


def _attr_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# A process exports thousands of spans that share one Resource: convert it once.
_RESOURCE_DICTS: dict[int, tuple[Resource, dict[str, Any]]] = {}


def _resource_dict(resource: Resource) -> dict[str, Any]:
    cached = _RESOURCE_DICTS.get(id(resource))
    if cached is None or cached[0] is not resource:
        if len(_RESOURCE_DICTS) > 64:
            _RESOURCE_DICTS.clear()
        cached = _RESOURCE_DICTS[id(resource)] = (
            resource,
            {k: _attr_value(v) for k, v in resource.attributes.items()},
        )
    return cached[1]


def _hex_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as plain JSON-able data (ids in W3C hex, times in ns since the epoch)."""
    ctx = span.context
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx is not None else None,
        "span_id": _hex_span_id(ctx.span_id) if ctx is not None else None,
        "parent_span_id": _hex_span_id(parent.span_id) if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": {k: _attr_value(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": {k: _attr_value(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
        "resource": _resource_dict(span.resource),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope is not None else None,
    }


# One span's line exactly as `to_json(span_to_dict(span))` writes it, made by one bytes formatting
# of the parts that vary per span: the exporter's hot loop, half the cost of building the dict.
# (pydantic-core writes a tuple as the JSON array span_to_dict makes a list for.)
_LINE: Final = (
    b'{"trace_id":"%032x","span_id":"%016x","parent_span_id":%b,"name":%b,"kind":"%b",'
    b'"start_time_unix_nano":%d,"end_time_unix_nano":%d,"status":%b,"attributes":%b,"events":%b,'
    b'"resource":%b,"scope":%b}\n'
)
_PARENT_ID: Final = b'"%016x"'
# By the enum members' values: an int's hash is C, an Enum member's a Python call.
_KIND_NAMES: Final = {kind.value: kind.name.encode() for kind in SpanKind}
_BARE_STATUSES: Final = {code.value: to_json({"code": code.name, "description": None}) for code in StatusCode}


class _SpanLines:
    """Spans as JSON lines. Keeps the JSON of the resources, scope names and span names seen (a
    process has a handful of each, shared by thousands of spans: `iteration 3`, `chat <model>`)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        self._names: dict[str | None, bytes] = {}

    def line(self, span: ReadableSpan) -> bytes:
        ctx = span.context
        start, end = span.start_time, span.end_time
        if ctx is None or start is None or end is None:
            return to_json(span_to_dict(span), fallback=str) + b"\n"
        trace_id, span_id, _remote, _flags, _state, _valid = ctx  # a SpanContext is a tuple
        parent = span.parent
        status = span.status
        events = span.events
        resource = span.resource
        resource_json = self._resources.get(id(resource))
        scope = span.instrumentation_scope
        scope_name = scope.name if scope is not None else None
        names = self._names
        name = span.name
        return _LINE % (
            trace_id,
            span_id,
            _PARENT_ID % parent[1] if parent is not None else b"null",
            names.get(name) or self._name_json(name),
            _KIND_NAMES[span.kind._value_],
            start,
            end,
            _BARE_STATUSES[status.status_code._value_]
            if status.description is None
            else to_json({"code": status.status_code.name, "description": status.description}),
            to_json(_plain_dict(span.attributes), fallback=str),
            to_json([_event_dict(event) for event in events], fallback=str) if events else b"[]",
            resource_json[1]
            if resource_json is not None and resource_json[0] is resource
            else self._resource_json(resource),
            names.get(scope_name) or self._name_json(scope_name),
        )

    def _resource_json(self, resource: Resource) -> bytes:
        if len(self._resources) > 64:
            self._resources.clear()
        json_ = to_json(_resource_dict(resource), fallback=str)
        self._resources[id(resource)] = (resource, json_)
        return json_

    def _name_json(self, name: str | None) -> bytes:
        if len(self._names) > 1024:
            self._names.clear()
        json_ = self._names[name] = to_json(name)
        return json_


def _plain_dict(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes as a dict, which pydantic-core writes as a JSON object (a mapping proxy or the
    SDK's BoundedAttributes, it would write as a string). Their copy is a dict (a proxy copies the
    mapping it shows)."""
    if type(attributes) is MappingProxyType or type(attributes) is BoundedAttributes:
        copied = attributes.copy()
        if type(copied) is dict:
            return copied
    return dict(attributes or {})


def _event_dict(event: Event) -> dict[str, Any]:
    return {
        "name": event.name,
        "time_unix_nano": event.timestamp,
        "attributes": _plain_dict(event.attributes),
    }


class JsonlSpanExporter(SpanExporter):
    """Appends one JSON object per span to a file (JSON Lines). Thread-safe. The file is opened on
    the first export (append mode, unbuffered) and closed at shutdown. Each export writes its
    batch of whole lines with one `write` (repeated only for what a short write left over), so
    processes appending to the same file never split each other's lines."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._shut_down = False
        self._lines = _SpanLines()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        line = self._lines.line
        try:
            data = b"".join([line(span) for span in spans])
        except ValueError:  # a string JSON cannot hold as UTF-8 (a lone surrogate), somewhere
            data = b"".join([_ascii_line(span) for span in spans])
        try:
            with self._lock:
                if self._file is None:
                    from agent_platform._state_files import open_private_append

                    self._file = open_private_append(self.path)  # 0600: spans may hold prompts
                written = self._file.write(data)
                while written < len(data):  # a short write (a signal, a full disk): the rest
                    written += self._file.write(memoryview(data)[written:])
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered: each export is written when it is made

    def shutdown(self) -> None:
        with self._lock:
            self._shut_down = True
            if self._file is not None:
                self._file.close()
                self._file = None


def _ascii_line(span: ReadableSpan) -> bytes:
    """A span's line with every non-ASCII character escaped: how the rare span whose text is not
    valid UTF-8 is still written (with the rest of its batch)."""
    return json.dumps(span_to_dict(span), separators=(",", ":"), default=str).encode() + b"\n"
