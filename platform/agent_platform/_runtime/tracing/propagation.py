"""W3C trace context across process and actor boundaries: what a caller sends with a call
(`inject_context`) and the parent context the receiving side starts its spans under
(`extract_context`), so a run is one trace across nodes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR: Final = TraceContextTextMapPropagator()


def inject_context(ctx: Context | None = None) -> dict[str, str]:
    """The current trace context (or `ctx`) as W3C `traceparent`/`tracestate` headers, to send with
    a call into another process or actor. Empty when there is no valid span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> Context:
    """The context a carrier from `inject_context` describes; pass it as `parent=` to a span
    (`run_span`, `task_span`, `span`) on the receiving side. An empty carrier gives a root context."""
    return _PROPAGATOR.extract(dict(carrier) if carrier else {}, context=Context())
