"""The runtime's fast paths behave exactly like the general ones they shortcut: fast spans export
what SDK spans export (and step aside whenever they could differ), a direct inline tool call
gives the results, errors, attempts and retries of the full executor, the scripted provider's
first attempt and forks, cached prompts, and the tool-output boundary."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, StatusCode, TraceFlags

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.agent_loop import _PromptCache
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.guardrails import GuardrailSet, wrap_tool_output
from agent_platform._runtime.guardrails.injection import escape_boundary
from agent_platform._runtime.models.base import ModelResult, ModelServerError, Usage
from agent_platform._runtime.tools import ToolExecutor, ToolOutputInvalid, ToolRegistry
from agent_platform._runtime.tools.errors import ToolArgumentsInvalid, ToolFailed
from agent_platform._runtime.tracing import (
    MemorySpanExporter,
    Tracing,
    TracingHandle,
    configure_tracing,
    extract_context,
    inject_context,
    record_model_result,
    span_to_dict,
)
from agent_platform._runtime.tracing.exporters import InMemoryProcessor
from agent_platform._runtime.tracing.fast_spans import EndedFastSpan, FastSpan, tracer_provider
from agent_platform._spec.kinds import ToolSpec

# --- fast spans ----------------------------------------------------------------------------------


class _Watching(SpanProcessor):
    """A processor with a real on_start: the SDK must make every span it sees start."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.name)


@pytest.fixture
def tracing() -> Iterator[TracingHandle]:
    handle = configure_tracing(memory=True)
    yield handle
    handle.shutdown()


def _workload(t: Tracing) -> None:
    """One run's worth of spans: attributes, results, events, an error, a cancellation."""
    result = ModelResult(None, Usage(12, 3), 0.25, "scripted", "fast", response_id="r-1", attempts=2)  # type: ignore[arg-type]
    with t.run_span("agent", "researcher", "run-1"):
        with t.iteration_span(1):
            with t.model_span("scripted", "fast", "researcher", max_tokens=64, temperature=0.5) as span:
                t.record_model_result(span, result)
            with t.tool_span("search", "run-1:1", side_effects=False) as span:
                t.guardrail_event("inj", "prompt_injection", "redact", "looks like an instruction")
                t.loop_detected("search", pattern=["search", "fetch"], repeats=2, action="warn")
                t.record_tool_result(span, attempts=2, cached=True, error="card declined\nmore")
                span.set_attribute("custom.list", ["a", "b"])
                span.set_attributes({"custom.n": 3})
        with t.iteration_span(2):
            try:
                with t.tool_span("fetch", "run-1:2"):
                    raise TimeoutError("fetch took 30 s")
            except TimeoutError:
                pass
            with t.step_span("p", "s", index=1, kind="agent"), t.span("custom", {"k": [1, 2]}):
                pass


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    data = span_to_dict(span)
    for key in ("trace_id", "span_id", "parent_span_id", "start_time_unix_nano", "end_time_unix_nano"):
        data.pop(key)
    for event in data["events"]:
        event.pop("time_unix_nano")
        event["attributes"].pop("exception.stacktrace", None)  # line numbers differ
    ctx = span.context
    assert ctx is not None
    data["context"] = (ctx.trace_flags, ctx.is_remote, ctx.is_valid, ctx.trace_state)
    data["parent"] = span.parent is not None
    data["dropped"] = (span.dropped_attributes, span.dropped_events, span.dropped_links)
    return data


def _tree(spans: tuple[ReadableSpan, ...]) -> list[tuple[str, str | None]]:
    names = {s.context.span_id: s.name for s in spans if s.context is not None}
    return sorted((s.name, names.get(s.parent.span_id) if s.parent else None) for s in spans)


def test_fast_spans_export_what_sdk_spans_export(tracing: TracingHandle) -> None:
    _workload(tracing)
    fast = tracing.finished_spans()
    # The same workload with a processor that has an on_start: every span made by the SDK.
    watching = _Watching()
    with configure_tracing(memory=True, extra_processors=[watching]) as sdk:
        _workload(sdk)
        slow = sdk.finished_spans()
    assert not any(isinstance(s, EndedFastSpan) for s in slow)
    assert len(watching.started) == len(slow) == len(fast) == 8
    # Every span, the root too, was a fast span, and it reads exactly like the SDK's.
    assert all(type(s) is EndedFastSpan for s in fast)
    assert [_comparable(s) for s in fast] == [_comparable(s) for s in slow]
    assert _tree(fast) == _tree(slow)
    # One run is one trace, with real ids and parentage.
    assert len({s.context.trace_id for s in fast if s.context}) == 1
    tool = next(s for s in fast if s.name == "execute_tool search")
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes["custom.list"] == ("a", "b")  # cleaned like the SDK cleans
    assert tool.kind is SpanKind.INTERNAL
    assert next(s for s in fast if s.name == "chat fast").kind is SpanKind.CLIENT


def test_fast_spans_draw_the_ids_the_sdk_draws(tracing: TracingHandle) -> None:
    """From the same random state, the same trace and span ids in the same order: identical
    contexts (flags and trace state included) and parents."""
    random.seed(7)
    _workload(tracing)
    fast = tracing.finished_spans()
    with configure_tracing(memory=True, extra_processors=[_Watching()]) as sdk:
        random.seed(7)
        _workload(sdk)
        slow = sdk.finished_spans()
    assert [(s.name, s.context, s.parent) for s in fast] == [(s.name, s.context, s.parent) for s in slow]


def test_fast_root_spans_follow_the_id_generator() -> None:
    """A generator whose trace ids are not random: no random-trace-id flag, as the SDK sets it."""

    class Counting(IdGenerator):
        def __init__(self) -> None:
            self.n = 0

        def generate_span_id(self) -> int:
            self.n += 1
            return self.n

        def generate_trace_id(self) -> int:
            self.n += 1
            return self.n

        def is_trace_id_random(self) -> bool:
            return False

    contexts = []
    for processors in ((), (_Watching(),)):
        exporter = MemorySpanExporter()
        provider = tracer_provider(id_generator=Counting())
        for processor in (InMemoryProcessor(exporter), *processors):
            provider.add_span_processor(processor)
        handle = TracingHandle(provider, memory_exporter=exporter)
        with handle.run_span("agent", "a", "r"), handle.tool_span("t", "c"):
            pass
        contexts.append([(s.context, s.parent, type(s) is EndedFastSpan) for s in handle.finished_spans()])
        handle.shutdown()
    fast_spans, sdk_spans = contexts
    assert [c[:2] for c in fast_spans] == [c[:2] for c in sdk_spans]
    assert all(c[2] for c in fast_spans) and not any(c[2] for c in sdk_spans)
    assert fast_spans[0][0].trace_flags == TraceFlags.SAMPLED


def test_fast_spans_step_aside_when_they_could_differ(
    tracing: TracingHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A root span is a fast one with the default sampler (root delegate ALWAYS_ON)...
    with tracing.iteration_span(1) as root:
        with tracing.tool_span("t", "c") as child:
            assert isinstance(child, FastSpan)
        assert isinstance(root, FastSpan)
    # ... and the SDK's with any other sampler (one whose decisions are not documented).
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    ratio = TracingHandle(tracer_provider())
    with ratio.iteration_span(1) as root, ratio.tool_span("t", "c") as child:
        assert not isinstance(root, FastSpan) and not isinstance(child, FastSpan)
        assert root.is_recording() and child.is_recording()
    ratio.shutdown()
    monkeypatch.undo()
    # Another runtime context than the contextvars one: fast spans use the context API too.
    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", _OtherRuntimeContext())
    with tracing.run_span("agent", "a", "r") as run, tracing.tool_span("t", "c") as child:
        assert isinstance(run, FastSpan) and isinstance(child, FastSpan)
        assert child.parent.span_id == run.get_span_context().span_id  # type: ignore[attr-defined]
    monkeypatch.undo()
    # A provider the platform did not build (its span limits and processors are the SDK's
    # secret): the SDK makes every span.
    foreign = TracingHandle(TracerProvider())
    assert foreign._fast is None
    foreign.shutdown()
    # A processor added later, with an on_start, is noticed at the next span.
    watching = _Watching()
    tracing.provider.add_span_processor(watching)
    with tracing.run_span("agent", "a", "r"), tracing.tool_span("t", "c") as child:
        assert not isinstance(child, FastSpan)
    assert watching.started == ["invoke_agent a", "execute_tool t"]
    # A sampler that is not ParentBased(ALWAYS_ON) for sampled parents: the SDK decides.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    custom = TracingHandle(tracer_provider())
    assert custom._fast is not None
    with custom.run_span("agent", "a", "r") as run, custom.tool_span("t", "c") as child:
        assert not run.is_recording() and not child.is_recording()
        assert not isinstance(child, FastSpan)
    custom.shutdown()


def test_any_hook_run_before_the_end_sends_spans_through_the_sdk() -> None:
    """Hooks are found by walking `SpanProcessor`'s methods: a processor overriding one that runs
    while the span is open (`on_start`, or the SDK's `_on_ending`) gets every span from the SDK."""

    class Ending(SpanProcessor):
        def __init__(self) -> None:
            self.ending: list[str] = []

        def _on_ending(self, span: Any) -> None:
            self.ending.append(span.name)

    ending = Ending()
    with configure_tracing(memory=True, extra_processors=[ending]) as handle:
        with handle.run_span("agent", "a", "r") as run:
            assert not isinstance(run, FastSpan)
        assert [type(s) for s in handle.finished_spans()] == [ReadableSpan]
    assert ending.ending == ["invoke_agent a"]


class _OtherRuntimeContext(ContextVarsRuntimeContext):
    """A runtime context that is not OpenTelemetry's default one (it works the same)."""


def test_fast_spans_reach_every_kind_of_processor() -> None:
    """The batch processor's queue, the simple processor, a plain on_end and the concurrent
    multi-processor all receive what they would from the SDK's spans; a processor added while a
    span is open receives it when it ends, as the SDK's multi-processor would hand it over."""
    simple, batched, late = InMemorySpanExporter(), InMemorySpanExporter(), InMemorySpanExporter()
    ended: list[str] = []

    class OnEnd(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span.name)

    processors = [SimpleSpanProcessor(simple), BatchSpanProcessor(batched), OnEnd()]
    with configure_tracing(memory=True, extra_processors=processors) as handle:
        with handle.run_span("agent", "a", "r"):
            with handle.tool_span("t", "c") as open_span:
                handle.provider.add_span_processor(SimpleSpanProcessor(late))
            assert isinstance(open_span, FastSpan)
        handle.force_flush()
        kept = [s.name for s in handle.finished_spans()]
        assert kept == ["execute_tool t", "invoke_agent a"]
        assert [s.name for s in simple.get_finished_spans()] == kept == ended
        assert sorted(s.name for s in batched.get_finished_spans()) == sorted(kept)
        assert [s.name for s in late.get_finished_spans()] == kept
    concurrent = ConcurrentMultiSpanProcessor()
    exporter = InMemorySpanExporter()
    concurrent.add_span_processor(SimpleSpanProcessor(exporter))
    handle = TracingHandle(TracerProvider(active_span_processor=concurrent))
    with handle.run_span("agent", "a", "r") as run:
        assert not isinstance(run, FastSpan)  # not a provider the platform built
    handle.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["invoke_agent a"]
    handle.shutdown()


def test_the_memory_exporter_keeps_nothing_after_shutdown(tracing: TracingHandle) -> None:
    with tracing.run_span("agent", "a", "r"), tracing.tool_span("t", "c"):
        pass
    assert len(tracing.finished_spans()) == 2
    assert tracing.memory_exporter is not None
    tracing.memory_exporter.clear()
    assert tracing.finished_spans() == ()
    with tracing.run_span("agent", "a", "r"):
        pass
    tracing.shutdown()
    with tracing.run_span("agent", "a", "r"):  # a span ended after shutdown
        pass
    assert [s.name for s in tracing.finished_spans()] == ["invoke_agent a"]


def test_a_scope_exited_in_another_context_is_logged_like_the_sdk(
    tracing: TracingHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """Restoring the context fails (the token is another context's): logged, not raised, as
    OpenTelemetry's detach does; the span still ends and is exported."""
    scope = tracing.iteration_span(1)
    span = contextvars.copy_context().run(scope.__enter__)
    assert isinstance(span, FastSpan)
    scope.__exit__(None, None, None)
    assert "Failed to detach context" in caplog.text
    assert [s.name for s in tracing.finished_spans()] == ["iteration 1"]


def test_fast_span_under_remote_parents(tracing: TracingHandle) -> None:
    # A sampled remote parent (another process's span): a fast child in the same trace.
    with tracing.run_span("agent", "caller", "r0") as caller:
        carrier = inject_context()
    remote = extract_context(carrier)
    with (
        tracing.run_span("agent", "callee", "r1", parent=remote) as run,
        tracing.tool_span("t", "c") as child,
    ):
        assert isinstance(child, FastSpan)
    assert child.get_span_context().trace_id == caller.get_span_context().trace_id
    assert run.get_span_context().trace_id == caller.get_span_context().trace_id
    # An unsampled parent: nothing is recorded, as with the SDK.
    before = len(tracing.finished_spans())
    unsampled = {"traceparent": carrier["traceparent"][:-2] + "00"}
    with tracing.tool_span("t", "c", side_effects=None) as span:
        pass
    with tracing.span("x", parent=extract_context(unsampled)) as span:
        assert not span.is_recording()
    assert len(tracing.finished_spans()) == before + 1


def test_fast_span_api_rules(tracing: TracingHandle, caplog: pytest.LogCaptureFixture) -> None:
    with tracing.run_span("agent", "a", "r"), tracing.tool_span("t", "c") as span:
        assert isinstance(span, FastSpan)
        span.set_attribute("", 1)  # invalid key: dropped
        span.set_attribute("obj", object())  # no string form of its own: None, like the SDK
        span.update_name("execute_tool renamed")
        span.set_status(StatusCode.OK)
        span.set_status(StatusCode.ERROR, "ignored: OK is final")
        record_model_result(span, ModelResult(None, Usage(1, 2), 0.0, "p", "m"))  # type: ignore[arg-type]
    assert not span.is_recording()
    span.set_attribute("late", 1)
    span.add_event("late")
    span.end()  # a second end is refused
    (finished,) = [s for s in tracing.finished_spans() if s.name == "execute_tool renamed"]
    assert "" not in finished.attributes and "late" not in finished.attributes
    assert finished.attributes["gen_ai.usage.output_tokens"] == 2
    assert finished.status.status_code is StatusCode.OK
    assert not finished.events
    assert "ended" in caplog.text


def test_span_limits_apply_to_fast_spans() -> None:
    from opentelemetry.sdk.trace import SpanLimits

    provider = tracer_provider(span_limits=SpanLimits(max_span_attributes=2, max_events=1))
    handle = TracingHandle(provider)
    exporter = MemorySpanExporter()
    provider.add_span_processor(InMemoryProcessor(exporter))
    with handle.run_span("agent", "a", "r"), handle.span("s") as span:
        assert isinstance(span, FastSpan)
        for key in ("a", "b", "c"):
            span.set_attribute(key, 1)
        span.add_event("one")
        span.add_event("two")
    inner = next(s for s in exporter.get_finished_spans() if s.name == "s")
    assert dict(inner.attributes or {}) == {"b": 1, "c": 1}  # the oldest dropped, as the SDK does
    assert inner.dropped_attributes == 1
    assert [e.name for e in inner.events] == ["two"]
    handle.shutdown()


def test_concurrent_fast_spans_keep_their_parents(tracing: TracingHandle) -> None:
    async def run(run_id: str) -> None:
        with tracing.run_span("agent", run_id, run_id):
            for n in (1, 2):
                with tracing.iteration_span(n):
                    await asyncio.gather(*(tool(run_id, i) for i in range(3)))

    async def tool(run_id: str, i: int) -> None:
        with tracing.tool_span(f"t{i}", f"{run_id}:{i}"):
            await asyncio.sleep(0.001 * (3 - i))

    async def main() -> None:
        await asyncio.gather(run("a"), run("b"))

    asyncio.run(main())
    spans = tracing.finished_spans()
    by_id = {s.context.span_id: s for s in spans if s.context}
    for span in spans:
        if span.name.startswith("execute_tool"):
            iteration = by_id[span.parent.span_id]  # type: ignore[union-attr]
            root = by_id[iteration.parent.span_id]  # type: ignore[union-attr]
            assert iteration.name.startswith("iteration") and root.parent is None
            assert str(span.attributes["gen_ai.tool.call.id"]).startswith(
                str(root.attributes["agent_platform.run.id"])
            )


# --- the direct tool path ------------------------------------------------------------------------


def _executors(fn: Any, **fields: Any) -> tuple[ToolExecutor, ToolExecutor, list[tuple[str, dict[str, Any]]]]:
    """The same function as an inline tool (direct path) and as a threaded one (general path)."""
    events: list[tuple[str, dict[str, Any]]] = []
    executors = []
    for inline in (True, False):
        registry = ToolRegistry(plugin_paths=[])
        registry.register(fn, name="f", inline=inline)
        fields.setdefault("description", "A test tool.")
        spec = ToolSpec.model_validate({"python": "testing:f", **fields})
        executors.append(
            ToolExecutor(
                [ToolBinding("f", spec)],
                registry,
                clock=FakeClock(),
                on_event=lambda name, attrs: events.append((name, attrs)),
            )
        )
    assert executors[0]._entries["f"].direct_func is not None
    assert executors[1]._entries["f"].direct_func is None
    return executors[0], executors[1], events


def _same(a: Any, b: Any) -> None:
    assert (a.output, a.attempts, a.cached, type(a.error), a.content()) == (
        b.output,
        b.attempts,
        b.cached,
        type(b.error),
        b.content(),
    )


async def test_direct_tool_calls_match_the_executor() -> None:
    failures = {"n": 0}

    def flaky(text: str) -> dict[str, Any]:
        failures["n"] += 1
        if failures["n"] % 2:
            raise ConnectionError("reset")  # retried by default (connection)
        return {"echo": text}

    direct, general, events = _executors(flaky)
    for executor in (direct, general):
        failures["n"] = 0
        result = await executor.call("f", {"text": "x"}, run_id="r")
        assert result.output == {"echo": "x"} and result.attempts == 2
    _same(
        await direct.call("f", {"text": "y"}, run_id="r"), await general.call("f", {"text": "y"}, run_id="r")
    )
    assert [name for name, _ in events].count("tool.retry") >= 2

    def broken(text: str) -> str:
        raise ValueError("no")

    direct, general, _ = _executors(broken)
    a, b = (
        await direct.call("f", {"text": "x"}, run_id="r"),
        await general.call("f", {"text": "x"}, run_id="r"),
    )
    assert isinstance(a.error, ToolFailed) and a.attempts == 1
    _same(a, b)
    a, b = await direct.call("f", {"wrong": 1}, run_id="r"), await general.call("f", {"wrong": 1}, run_id="r")
    assert isinstance(a.error, ToolArgumentsInvalid) and a.attempts == 0
    _same(a, b)

    def too_big(n: int) -> dict[str, int]:
        return {"n": n}

    schema = {"type": "object", "properties": {"n": {"maximum": 5}}}
    direct, general, _ = _executors(too_big, output_schema=schema)
    a, b = await direct.call("f", {"n": 9}, run_id="r"), await general.call("f", {"n": 9}, run_id="r")
    assert isinstance(a.error, ToolOutputInvalid)
    _same(a, b)

    def lazy(text: str) -> Any:
        async def later() -> str:
            return text.upper()

        return later()  # a sync function returning an awaitable: awaited

    direct, general, _ = _executors(lazy)
    a, b = (
        await direct.call("f", {"text": "x"}, run_id="r"),
        await general.call("f", {"text": "x"}, run_id="r"),
    )
    assert a.output == "X"
    _same(a, b)


async def test_direct_path_is_only_for_tools_without_policies() -> None:
    def f(text: str) -> str:
        return text

    registry = ToolRegistry(plugin_paths=[])
    registry.register(f, name="f", inline=True)
    for fields in (
        {"circuit_breaker": {"failure_threshold": 2, "reset_after": 1}},
        {"idempotency": {"mode": "cache"}},
        {"requires_approval": True},
    ):
        spec = ToolSpec.model_validate({"python": "testing:f", "description": "d", **fields})
        executor = ToolExecutor([ToolBinding("f", spec)], registry, clock=FakeClock())
        assert executor._entries["f"].direct_func is None, fields


# --- scripted provider ---------------------------------------------------------------------------


async def test_scripted_first_attempt_and_retries(tmp_path: Any) -> None:
    from pydantic import BaseModel

    from agent_platform._runtime.models.base import ModelRequest
    from agent_platform._runtime.models.scripted import ScriptedProvider
    from agent_platform._spec.kinds import ModelSpec

    class Answer(BaseModel):
        summary: str

    script = tmp_path / "s.yaml"
    script.write_text("responses:\n  k:\n    - error: server_error\n    - {summary: ok}\n    - error: auth\n")
    spec = ModelSpec.model_validate(
        {
            "provider": "scripted",
            "script": "s.yaml",
            "retry": {"max_attempts": 3, "backoff": {"initial": 0.01}},
        }
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    provider = ScriptedProvider(spec, script, sleep=sleep)
    request = ModelRequest(system="s", messages=[], response_model=Answer, key="k")
    for run in (provider, provider.fork()):  # a fork replays from the start, sharing the rest
        result = await run.complete(request)
        assert (result.output.summary, result.attempts, result.response_id) == ("ok", 2, "scripted:k:2")
        with pytest.raises(Exception, match="auth") as raised:  # not retried
            await run.complete(request)
        assert not isinstance(raised.value, ModelServerError)
    assert len(slept) == 2
    fork = provider.fork()
    assert fork.remaining("k") == 3 and provider.remaining("k") == 0
    assert fork.retry is provider.retry and fork.script is provider.script


# --- prompts -------------------------------------------------------------------------------------


def test_prompt_cache_only_for_templates_of_the_inputs_alone() -> None:
    assert _PromptCache.safe_for("Research {{ inputs.topic | upper }} for {{ agent.name }}.")
    assert _PromptCache.safe_for("{% for k, v in inputs.items() %}{{ k }}={{ v }}{% endfor %}")
    assert _PromptCache.safe_for("{% for i in range(3) %}{{ i }}{% endfor %}")
    assert not _PromptCache.safe_for("Pick {{ inputs.options | random }}")
    assert not _PromptCache.safe_for("{{ lipsum(1) }}")
    assert not _PromptCache.safe_for("{{ inputs.items.pop() }}")  # a call that mutates
    assert not _PromptCache.safe_for("{{ cycler('a', 'b').next() }}")
    assert not _PromptCache.safe_for("{% if %}")  # does not parse: rendered (and failing) every time
    key = _PromptCache.key
    assert key({"a": 1}) != key({"a": True}) != key({"a": 1.0})
    assert key({"a": [1, 2]}) is not None and key({"a": (1, 2)}) is None
    assert key({"a": {"b": None}}) is not None and key({"a": object()}) is None
    cache = _PromptCache()
    for i in range(_PromptCache.MAX_ENTRIES + 1):
        cache.put(str(i), ("s", "t"))
    assert cache.get("0") is None and cache.get(str(_PromptCache.MAX_ENTRIES)) == ("s", "t")


def test_empty_guardrail_set_is_its_own_fresh_copy() -> None:
    empty = GuardrailSet()
    assert empty.fresh() is empty


# --- the tool-output boundary ------------------------------------------------------------------


def test_plain_ascii_output_still_loses_the_nonce() -> None:
    nonce = "0123456789abcdef0123456789abcdef"
    assert escape_boundary(f"echo {nonce.upper()} done", nonce) == "echo [boundary-id] done"
    assert escape_boundary("plain text", nonce) == "plain text"
    # Non-ASCII text is normalised before looking for markers, as before.
    assert "&lt;" in escape_boundary("\uff1ctool_output>", nonce)
    wrapped = wrap_tool_output("x", tool_name="my tool!", nonce=nonce)
    assert wrapped.startswith(f'<tool_output id="{nonce}" tool="my_tool_">')
