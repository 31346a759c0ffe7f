"""Deterministic pipelines: steps in order, templated inputs, `map` fan-out with bounded
concurrency that keeps order, outputs validated where a schema is declared, and a failure that
says which step and which input failed.

Values carry provenance. The output of a tool, agent or pipeline step enters the run through the
tool-output guardrails (the pipeline's, then those the tool's own spec lists): a redaction
changes the value later steps see, a block fails the step. An untrusted value (an untrusted
tool's output, the result of a sub-run that read one) taints the run; from then on its tool steps
run under the pipeline's `untrusted_context` policy, its agent steps inherit the taint and the
policy, and its `llm` steps render every value of their prompts inside the unforgeable boundary
that their system prompt then explains. A call that waits for an approval nobody can give ends
the run with `needs_approval`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import jsonschema_rs
from jinja2 import Template

from agent_platform._compile.compiler import build_output_model
from agent_platform._compile.plan import PipelineUnit, SpecRef, StepPlan
from agent_platform._memory.items import Provenance
from agent_platform._memory.manager import MemoryEntry
from agent_platform._runtime.approval import ApprovalRequest, ApprovalRequired
from agent_platform._runtime.events import StepFinished, StepStarted
from agent_platform._runtime.guardrails import (
    BOUNDARY_INSTRUCTIONS,
    GuardContext,
    GuardrailSet,
    GuardResult,
    wrap_tool_output,
)
from agent_platform._runtime.intake import guard_content
from agent_platform._runtime.messages import Message
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.provenance import Origin
from agent_platform._runtime.provenance import Provenance as ValueProvenance
from agent_platform._runtime.rendering import TemplateRenderError, render, render_template, render_value
from agent_platform._runtime.services import RunState, Services
from agent_platform._spec.kinds import MEMORY_WRITE_INPUT_SCHEMA
from agent_platform._spec.policy import Trust
from agent_platform._template_sandbox import bounded_environment


class StepFailed(Exception):
    def __init__(
        self,
        step: str,
        message: str,
        *,
        item: int | None = None,
        of: int | None = None,
        input: Any = None,
        outcome: Outcome = Outcome.FAILED,
    ) -> None:
        where = f"step '{step}'" + (f" (item {item + 1} of {of})" if item is not None else "")
        super().__init__(f"{where}: {message}")
        self.step = step
        self.item = item
        self.input = input
        self.outcome = outcome  # GUARDRAIL_HALT when a guardrail stopped the run


# What marks a value rendered into an `llm` prompt of a tainted run (its step is not known there).
PROMPT_VALUE_SOURCE = "data"


def _fence_prompt_value(value: Any) -> Any:
    """What `{{ value }}` prints in an `llm` prompt of a tainted run: the value inside the
    unforgeable boundary (numbers, booleans and None have no room for instructions). Only the
    template's own text stays outside: that is the only text of such a prompt no one else can have
    written."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return wrap_tool_output(str(value), tool_name=PROMPT_VALUE_SOURCE)


def _preview(value: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.instance_path) or '(root)'}: {e.message}"
        for e in jsonschema_rs.validator_for(schema).iter_errors(value)
    ][:5]


class PipelineExecutor:
    def __init__(self, unit: PipelineUnit, services: Services) -> None:
        self.unit = unit
        self.services = services
        self._llm_models: dict[str, Any] = {}
        self._bounded_prompts: dict[tuple[str, str], Template] = {}
        # The pipeline's tool-output guardrails, and per tool step those only the tool lists.
        self._guards = GuardrailSet.from_bindings(unit.guardrails)
        self._guarded = self._guards.applies("tool_output")
        own = {g.name for g in unit.guardrails}
        self._tool_guards = {
            s.tool.name: GuardrailSet.from_bindings([g for g in s.tool.guardrails if g.name not in own])
            for s in unit.steps
            if s.tool is not None and any(g.name not in own for g in s.tool.guardrails)
        }

    async def aclose(self) -> None:
        await self._guards.aclose()
        for guards in self._tool_guards.values():
            await guards.aclose()

    async def run(self, inputs: dict[str, Any], run: RunState) -> RunResult:
        started = time.perf_counter()
        context: dict[str, Any] = {
            "inputs": inputs,
            "steps": {},
            "pipeline": {"name": self.unit.name, "run_id": run.run_id},
        }
        result = RunResult(run.run_id, str(self.unit.ref), Outcome.COMPLETED)
        try:
            async with asyncio.timeout(self.unit.timeout):
                last: Any = None
                tracing = self.services.tracing
                events = run.events
                for index, step in enumerate(self.unit.steps):
                    if events is not None:  # a run someone may follow
                        events.emit(run.run_id, StepStarted(step=step.name))
                    ok = False
                    try:
                        with tracing.step_span(self.unit.name, step.name, index=index, kind=step.target_kind):
                            last = await self._run_step(step, context, run)
                        ok = True
                    finally:
                        if events is not None:
                            events.emit(run.run_id, StepFinished(step=step.name, ok=ok))
                    context["steps"][step.name] = {"output": last}
                output = (
                    render_value(self.unit.returns, context, where="spec.returns")
                    if self.unit.returns is not None
                    else last
                )
                if self.unit.output_schema is not None and (
                    problems := _schema_errors(self.unit.output_schema, output)
                ):
                    raise StepFailed(
                        "returns", "pipeline output does not match its output schema: " + "; ".join(problems)
                    )
                result.output = output
        except TimeoutError:
            result.outcome, result.error = (
                Outcome.TIMEOUT,
                f"pipeline exceeded its timeout of {self.unit.timeout:g}s",
            )
        except StepFailed as exc:
            result.outcome, result.error = exc.outcome, str(exc)
            result.details = {"step": exc.step, "item": exc.item, "input": _preview(exc.input)}
        except ApprovalRequired as exc:
            result.outcome, result.error = Outcome.NEEDS_APPROVAL, str(exc)
            result.details = {"approval": exc.request.to_json()}
        except TemplateRenderError as exc:
            result.outcome, result.error = Outcome.FAILED, str(exc)
        result.usage, result.cost_usd, result.tool_calls = run.usage, run.cost_usd, run.tool_calls
        result.details.setdefault("steps_completed", list(context["steps"]))
        result.duration_s = time.perf_counter() - started
        return result

    async def _run_step(self, step: StepPlan, context: dict[str, Any], run: RunState) -> Any:
        where = f"spec.steps.{step.name}"
        if step.map is None:
            output = await self._call(step, context, run, where=where)
            self._check_output(step, output)
            return output
        items = render_value(step.map.over, context, where=f"{where}.map.over")
        if not isinstance(items, list):
            raise StepFailed(
                step.name, f"map.over must yield a list, got {type(items).__name__}: {_preview(items, 80)}"
            )
        semaphore = asyncio.Semaphore(step.map.concurrency)
        variable = step.map.as_

        async def one(index: int, item: Any) -> Any:
            async with semaphore:
                try:
                    return await self._call(
                        step, {**context, variable: item}, run, where=where, item=(index, len(items))
                    )
                except StepFailed:
                    raise
                except TemplateRenderError as exc:
                    raise StepFailed(step.name, str(exc), item=index, of=len(items), input=item) from None

        # A TaskGroup cancels the siblings of the first failure; results keep the input order.
        # A call waiting for approval stops the run before any failure does.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, item)) for i, item in enumerate(items)]
        except BaseExceptionGroup as group_error:
            pending = [e for e in group_error.exceptions if isinstance(e, ApprovalRequired)]
            if pending:
                raise pending[0] from None
            failures = [e for e in group_error.exceptions if isinstance(e, StepFailed)]
            if failures:
                raise _first(failures) from None
            raise
        outputs = [t.result() for t in tasks]
        self._check_output(step, outputs)
        return outputs

    async def _call(
        self,
        step: StepPlan,
        context: dict[str, Any],
        run: RunState,
        *,
        where: str,
        item: tuple[int, int] | None = None,
    ) -> Any:
        index, total = item if item is not None else (None, None)
        arguments = render_value(step.input, context, where=f"{where}.input")
        if step.target_kind == "tool":
            outcome = await self.services.call_tool(step.target, arguments, run=run)
            if outcome.is_error:
                raise StepFailed(
                    step.name, outcome.error or "tool failed", item=index, of=total, input=arguments
                )
            assert step.tool is not None
            provenance = ValueProvenance(Origin.TOOL, step.tool.policy.trust, step.target)
            return await self._admit(step, outcome.output, provenance, run, item=item)
        if step.target_kind in ("agent", "pipeline"):
            ref = SpecRef("Agent" if step.target_kind == "agent" else "Pipeline", step.target)
            sub = await self.services.run_unit(ref, arguments, parent=run)
            if (
                sub.outcome is Outcome.NEEDS_APPROVAL
            ):  # the sub-run's call waits for a person: so does this run
                pending = sub.details.get("approval")
                request = (
                    ApprovalRequest.from_json(pending)
                    if isinstance(pending, dict)
                    else ApprovalRequest("(unknown)", "", {}, sub.run_id, (sub.error or "",))
                )
                raise ApprovalRequired(request.handed_through(str(ref))) from None
            if not sub.ok:
                raise StepFailed(
                    step.name,
                    f"{ref} ended {sub.outcome.value}: {sub.error}",
                    item=index,
                    of=total,
                    input=arguments,
                )
            trust = Trust.UNTRUSTED if sub.taint else Trust.TRUSTED
            return await self._admit(
                step, sub.output, ValueProvenance(Origin.STEP, trust, step.name), run, item=item
            )
        if step.target_kind == "memory":
            return await self._memory(step, arguments, context, run, where=where, item=item)
        return await self._llm(step, context, run, where=where)

    async def _memory(
        self,
        step: StepPlan,
        arguments: dict[str, Any],
        context: dict[str, Any],
        run: RunState,
        *,
        where: str,
        item: tuple[int, int] | None,
    ) -> dict[str, Any]:
        """A memory step: embed and store `items` in a memory layer (idempotent: an item without
        an id is identified by its namespace and content, so a retried step stores nothing twice)."""
        write = step.memory
        assert write is not None
        index, total = item if item is not None else (None, None)
        try:
            problems = _schema_errors(MEMORY_WRITE_INPUT_SCHEMA, arguments)
        except ValueError as exc:  # not JSON data at all (e.g. a template yielded a method)
            problems = [str(exc)]
        if problems:
            raise StepFailed(
                step.name, "input does not match a memory write: " + "; ".join(problems),
                item=index, of=total, input=arguments,
            )  # fmt: skip
        tenant = render(write.tenant, context, where=f"{where}.memory.tenant") if write.tenant else run.tenant
        entries = [
            MemoryEntry(
                content=entry["content"],
                kind="document" if write.layer == "knowledge" else "fact",
                provenance=Provenance(
                    source="pipeline",
                    pipeline=self.unit.name,
                    run_id=run.run_id,
                    document_id=(entry.get("metadata") or {}).get("document_id"),
                ),
                importance=entry.get("importance", 0.5),
                metadata=entry.get("metadata") or {},
                id=entry.get("id"),
            )
            for entry in arguments["items"]
        ]
        try:
            manager = self.services.memory(write.name)
            namespace = manager.namespace(write.layer, agent=write.agent, tenant=tenant)
            ack = await manager.write(write.layer, entries, agent=write.agent, tenant=tenant)
        except Exception as exc:  # a store or embedder failure, located by its message
            raise StepFailed(step.name, str(exc), item=index, of=total, input=arguments) from exc
        return {
            "memory": write.name,
            "layer": write.layer,
            "namespace": namespace,
            "written": len(ack.written),
            "duplicates": len(ack.duplicates),
            "ids": [*ack.written, *ack.duplicates.values()],
        }

    async def _admit(
        self,
        step: StepPlan,
        output: Any,
        provenance: ValueProvenance,
        run: RunState,
        *,
        item: tuple[int, int] | None,
    ) -> Any:
        """A step's output entering the run: recorded in its taint, and checked by the
        pipeline's tool-output guardrails and then those only the step's tool lists."""
        run.taint.admit(provenance)
        extra = self._tool_guards.get(step.target) if step.target_kind == "tool" else None
        if not self._guarded and extra is None:
            return output
        index, total = item if item is not None else (None, None)
        original = text = output if isinstance(output, str) else _json_text(output)
        for guards in (self._guards if self._guarded else None, extra):
            if guards is None:
                continue
            checked = await guard_content(
                guards, "tool_output", GuardContext("tool_output", text, tool_name=provenance.source)
            )
            self._trace_guards(checked)
            if checked.blocked or checked.halted:
                stopping = checked.stopping
                raise StepFailed(
                    step.name,
                    checked.message_for_model()
                    or f"halted by guardrail '{stopping.guardrail if stopping else '?'}'",
                    item=index,
                    of=total,
                    outcome=Outcome.GUARDRAIL_HALT if checked.halted else Outcome.FAILED,
                )
            text = checked.content if checked.content is not None else text
        if text == original:
            return output
        if isinstance(output, str):
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise StepFailed(
                step.name,
                "a guardrail's redaction left the output without a JSON form",
                item=index,
                of=total,
            ) from None

    def _trace_guards(self, result: GuardResult) -> None:
        tracing = self.services.tracing
        for verdict in result.hits:
            tracing.guardrail_event(
                verdict.guardrail, verdict.type, verdict.decision.label, verdict.reason, stage="tool_output"
            )

    def _prompt(self, step: StepPlan, source: str, context: dict[str, Any], run: RunState, where: str) -> str:
        """An `llm` step's prompt or system text. Once untrusted content is among the run's values,
        every value it prints is wrapped in the boundary."""
        if not run.taint.tainted:
            return render(source, context, where=where)
        key = (step.name, source)
        template = self._bounded_prompts.get(key)
        if template is None:
            try:
                template = self._bounded_prompts[key] = bounded_environment(_fence_prompt_value).from_string(
                    source
                )
            except Exception as exc:
                raise TemplateRenderError(where, str(exc)) from None
        return render_template(template, context, where=where)

    async def _llm(self, step: StepPlan, context: dict[str, Any], run: RunState, *, where: str) -> Any:
        assert step.model is not None and step.prompt is not None and step.output_schema is not None
        prompt = self._prompt(step, step.prompt, context, run, f"{where}.llm.prompt")
        system = self._prompt(step, step.system, context, run, f"{where}.llm.system") if step.system else ""
        if run.taint.tainted:  # the prompt holds boundaries: say what they mean
            system = f"{system}\n\n{BOUNDARY_INSTRUCTIONS}" if system else BOUNDARY_INSTRUCTIONS
        model = self._llm_models.get(step.name)
        if model is None:
            model = self._llm_models[step.name] = build_output_model(
                step.output_schema, f"{step.name.title()}Output"
            )
        result = await self.services.complete(
            step.model,
            system=system,
            messages=[Message.user(prompt)],
            response_model=model,
            key=f"{self.unit.name}/{step.name}",
            run=run,
        )
        return result.output.model_dump(mode="json")

    def _check_output(self, step: StepPlan, output: Any) -> None:
        if step.output_schema is None or step.target_kind == "llm":
            return
        problems = _schema_errors(step.output_schema, output)
        if problems:
            raise StepFailed(
                step.name,
                "output does not match the step's output schema: " + "; ".join(problems),
                input=output,
            )


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _first(exceptions: Sequence[BaseException]) -> StepFailed:
    failures = [e for e in exceptions if isinstance(e, StepFailed)]
    failures.sort(key=lambda e: e.item if e.item is not None else -1)
    return failures[0]
