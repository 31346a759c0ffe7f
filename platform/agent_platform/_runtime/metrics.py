"""Metrics, derived from the spans a run already makes, exported wherever the spans go.

`MetricsSpanProcessor` reads each finished span (a model call, a tool call, an iteration, a run)
and records the OpenTelemetry GenAI client metrics and the platform's own, through the metrics
SDK. Nothing is added to the runtime's hot path: a span is the record of what happened, and the
processor leaves the fast span path on (it only implements `on_end`).

- `gen_ai.client.token.usage` (histogram, `{token}`; `gen_ai.token.type` input|output) and
  `gen_ai.client.operation.duration` (histogram, `s`; `error.type` on failures), per
  `gen_ai.operation.name`, `gen_ai.provider.name` and `gen_ai.request.model`;
- `agent_platform.runs` (by unit kind, unit and `agent_platform.run.outcome`), `agent_platform.steps`
  (agent iterations), `agent_platform.tool.calls` (by tool and outcome ok|error, with `error.type`),
  `agent_platform.cost` (USD, by unit), `agent_platform.approvals.waiting` (runs that stopped for a
  person's decision);
- `agent_platform.circuit_breakers` (`{breaker}`): how many circuit breakers are in each state
  (`agent_platform.breaker.state` closed|open|half_open), by `agent_platform.breaker.kind`
  (model|tool) and `agent_platform.breaker.name`. Not from spans: an observable up-down counter
  that reads the breakers of each `Runtime` built on this meter provider when the metrics are
  collected, so a call pays nothing for it. Summed over replicas, it counts the replicas whose
  breaker for a model or tool is open.

`configure_metrics` builds the meter provider next to the tracer provider: OTLP when the
standard environment asks for it, JSON lines beside a JSONL span file, or in memory for tests."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

if TYPE_CHECKING:
    from agent_platform._runtime.model_guard import ModelGuard
    from agent_platform._runtime.tools.executor import ToolExecutor
    from agent_platform._runtime.tools.resilience import CircuitBreaker

INSTRUMENTATION_NAME = "agent_platform"

# Bucket boundaries the GenAI semantic conventions advise for these two histograms.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

_MODEL_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")


class MetricsSpanProcessor(SpanProcessor):
    """Records the metrics of each finished span (see the module docstring)."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter(INSTRUMENTATION_NAME)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used by a model call.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of a model call.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.runs = meter.create_counter("agent_platform.runs", unit="{run}", description="Finished runs.")
        self.steps = meter.create_counter(
            "agent_platform.steps", unit="{step}", description="Agent iterations."
        )
        self.tool_calls = meter.create_counter(
            "agent_platform.tool.calls", unit="{call}", description="Tool calls, by outcome."
        )
        self.cost = meter.create_counter(
            "agent_platform.cost", unit="USD", description="Model spend of runs."
        )
        self.waiting = meter.create_counter(
            "agent_platform.approvals.waiting",
            unit="{run}",
            description="Runs stopped for a person's decision.",
        )

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        operation = attributes.get("gen_ai.operation.name")
        try:
            if operation == "chat":
                self._model_call(span, attributes)
            elif operation == "execute_tool":
                self._tool_call(span, attributes)
            elif "agent_platform.run.outcome" in attributes:
                self._run(attributes)
            elif span.name.startswith("iteration"):
                self.steps.add(1)
        except Exception:  # observing must never fail what it observes
            return

    def _model_call(self, span: ReadableSpan, attributes: Any) -> None:
        labels = {k: attributes[k] for k in _MODEL_KEYS if k in attributes}
        failed = span.status.status_code is StatusCode.ERROR
        if failed:
            labels["error.type"] = attributes.get("error.type", "error")
        if span.end_time is not None and span.start_time is not None:
            self.duration.record((span.end_time - span.start_time) / 1e9, labels)
        labels.pop("error.type", None)
        for kind, key in (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens")):
            tokens = attributes.get(key)
            if isinstance(tokens, int):
                self.token_usage.record(tokens, {**labels, "gen_ai.token.type": kind})

    def _tool_call(self, span: ReadableSpan, attributes: Any) -> None:
        labels: dict[str, Any] = {"gen_ai.tool.name": attributes.get("gen_ai.tool.name", "?")}
        if span.status.status_code is StatusCode.ERROR:
            labels["outcome"] = "error"
            labels["error.type"] = attributes.get("error.type", "error")
        else:
            labels["outcome"] = "ok"
        self.tool_calls.add(1, labels)

    def _run(self, attributes: Any) -> None:
        unit = {
            "agent_platform.unit.kind": attributes.get("agent_platform.unit.kind", "?"),
            "agent_platform.unit.name": attributes.get("agent_platform.unit.name", "?"),
        }
        outcome = attributes["agent_platform.run.outcome"]
        self.runs.add(1, {**unit, "agent_platform.run.outcome": outcome})
        cost = attributes.get("agent_platform.cost_usd")
        if isinstance(cost, int | float) and cost > 0:
            self.cost.add(float(cost), unit)
        if outcome == "needs_approval":
            self.waiting.add(1, unit)


BREAKER_STATES = ("closed", "open", "half_open")


class BreakerStates:
    """The `agent_platform.circuit_breakers` metric of one meter provider (see the module
    docstring). Holds the breakers weakly: a runtime that is gone stops being counted."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()  # runtimes register on their threads; the reader collects on its own
        self._breakers: list[tuple[str, str, weakref.ref[CircuitBreaker]]] = []
        meter.create_observable_up_down_counter(
            "agent_platform.circuit_breakers",
            callbacks=[self._observe],
            unit="{breaker}",
            description="Circuit breakers of models and tools, by state.",
        )

    def add(self, kind: str, name: str, breaker: CircuitBreaker) -> None:
        with self._lock:
            self._breakers.append((kind, name, weakref.ref(breaker)))

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        counts: dict[tuple[str, str], dict[str, int]] = {}
        with self._lock:
            live = [(kind, name, ref) for kind, name, ref in self._breakers if ref() is not None]
            self._breakers = live
        for kind, name, ref in live:
            breaker = ref()
            if breaker is None:
                continue
            # Every state of a breaker is reported, 0 included: an open breaker that closes
            # shows open 0, not a series that stops.
            per_state = counts.setdefault((kind, name), dict.fromkeys(BREAKER_STATES, 0))
            per_state[breaker.observed_state().value] += 1
        for (kind, name), per_state in counts.items():
            for state, count in per_state.items():
                yield Observation(
                    count,
                    {
                        "agent_platform.breaker.kind": kind,
                        "agent_platform.breaker.name": name,
                        "agent_platform.breaker.state": state,
                    },
                )


_BREAKER_STATES: weakref.WeakKeyDictionary[MeterProvider, BreakerStates] = weakref.WeakKeyDictionary()
_BREAKER_STATES_LOCK = threading.Lock()


def observe_breakers(
    provider: MeterProvider, tools: ToolExecutor, model_guards: Mapping[int, ModelGuard]
) -> None:
    """Count the circuit breakers of a runtime's tools and models in `provider`'s
    `agent_platform.circuit_breakers` (one instrument per provider, whatever the runtimes)."""
    found = list(_breakers_of(tools, model_guards))
    if not found:
        return
    with _BREAKER_STATES_LOCK:
        states = _BREAKER_STATES.get(provider)
        if states is None:
            states = _BREAKER_STATES[provider] = BreakerStates(provider.get_meter(INSTRUMENTATION_NAME))
    for kind, name, breaker in found:
        states.add(kind, name, breaker)


def _breakers_of(
    tools: ToolExecutor, model_guards: Mapping[int, ModelGuard]
) -> Iterable[tuple[str, str, CircuitBreaker]]:
    for name in tools.names():
        breaker = tools.breaker(name)
        if breaker is not None:
            yield "tool", name, breaker
    seen: set[int] = set()  # a model that is another's fallback shares its breaker
    for guard in model_guards.values():
        for model, model_breaker in guard.chain:
            if model_breaker is not None and id(model_breaker) not in seen:
                seen.add(id(model_breaker))
                yield "model", model.ref, model_breaker


class JsonlMetricExporter(MetricExporter):
    """Each export as one JSON line per data point, appended to a file (beside a JSONL span file)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        lines: list[str] = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        record = json.loads(point.to_json())
                        lines.append(json.dumps({"name": metric.name, "unit": metric.unit, **record}))
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def configure_metrics(
    resource: Resource,
    *,
    jsonl_path: Path | None = None,
    otlp: bool = False,
    memory: bool = False,
    interval_s: float = 15.0,
) -> tuple[MeterProvider, MetricsSpanProcessor, InMemoryMetricReader | None] | None:
    """The meter provider, the processor that feeds it from spans, and (with `memory`) the reader
    tests collect from. None when nothing would receive the metrics."""
    readers: list[MetricReader] = []
    memory_reader: InMemoryMetricReader | None = None
    if memory:
        memory_reader = InMemoryMetricReader()
        readers.append(memory_reader)
    if jsonl_path is not None:
        target = jsonl_path.with_name(jsonl_path.stem + ".metrics.jsonl")
        readers.append(
            PeriodicExportingMetricReader(
                JsonlMetricExporter(target), export_interval_millis=interval_s * 1000
            )
        )
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(
            PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval_s * 1000)
        )
    if not readers:
        return None
    provider = MeterProvider(resource=resource, metric_readers=readers)
    return provider, MetricsSpanProcessor(provider), memory_reader


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point the reader holds now, by metric name (for tests)."""
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found
