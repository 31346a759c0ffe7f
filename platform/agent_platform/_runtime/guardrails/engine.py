"""`GuardrailSet`: the guardrails of one unit, applied stage by stage.

Build it once per unit from the plan's bindings (`from_bindings`: patterns and schemas are
compiled here), then take `fresh()` for each run (stateful guardrails such as loop detection get
their own state; the rest is shared). At each stage the agent loop calls `await check(stage,
context)`: the guardrails for that stage run in the order they were declared; each sees the
content as redacted by the ones before it; the first `block` or `halt` stops the chain. The
result carries the final content and every verdict, for tracing and events.

What the caller does with the outcome:

* `allow` / `warn` / `redact`: go on with `result.content` (warnings are recorded).
* `block`: at `action`, do not run the tool and answer the tool_use with an error result
  (`result.message_for_model()`); at `tool_output`, replace the output with that error message;
  at `input` / `output`, reject the run's input or the final answer.
* `halt`: stop the run with a guardrail outcome (`result.stopping.reason`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_platform._runtime.guardrails.allowlist import ToolAllowlist
from agent_platform._runtime.guardrails.base import (
    STAGES,
    Decision,
    GuardContext,
    Guardrail,
    GuardrailConfigError,
    Stage,
    Verdict,
)
from agent_platform._runtime.guardrails.budget import BudgetGuard
from agent_platform._runtime.guardrails.classifier import InjectionClassifierGuard, ProviderFactory
from agent_platform._runtime.guardrails.injection import PromptInjectionGuard
from agent_platform._runtime.guardrails.loop import LoopDetector
from agent_platform._runtime.guardrails.output_schema import OutputSchemaGuard
from agent_platform._runtime.guardrails.pii import PiiRedactor
from agent_platform._runtime.guardrails.python_hook import ImportFunction, PythonHookGuard
from agent_platform._runtime.guardrails.regex import RegexGuard
from agent_platform._spec.kinds import (
    BudgetGuardrail,
    GuardrailSpec,
    InjectionClassifierGuardrail,
    LoopDetectionGuardrail,
    OutputSchemaGuardrail,
    PiiRedactionGuardrail,
    PromptInjectionGuardrail,
    PythonGuardrail,
    RegexGuardrail,
    ToolAllowlistGuardrail,
)

if TYPE_CHECKING:
    from agent_platform._compile.plan import ResolvedModel


@dataclass(slots=True)
class GuardResult:
    """The outcome of one stage check."""

    stage: Stage
    content: str | None
    verdicts: list[Verdict]
    decision: Decision = Decision.ALLOW

    @property
    def stopping(self) -> Verdict | None:
        """The block or halt verdict that stopped the chain, if any."""
        last = self.verdicts[-1] if self.verdicts else None
        return last if last is not None and last.stops else None

    @property
    def blocked(self) -> bool:
        return self.decision is Decision.BLOCK

    @property
    def halted(self) -> bool:
        return self.decision is Decision.HALT

    @property
    def redacted(self) -> bool:
        return any(v.decision is Decision.REDACT for v in self.verdicts)

    @property
    def hits(self) -> list[Verdict]:
        """The verdicts other than allow (what traces and events report)."""
        return [v for v in self.verdicts if v.decision is not Decision.ALLOW]

    def message_for_model(self) -> str:
        """The error text the model sees in place of a blocked tool call or tool output."""
        verdict = self.stopping
        if verdict is None:
            return ""
        what = {
            "action": "This action was not executed",
            "tool_output": "The tool output was withheld",
            "input": "The input was rejected",
            "output": "The answer was rejected",
        }[self.stage]
        return f"{what} by guardrail '{verdict.guardrail}' ({verdict.type}): {verdict.reason}"


def build_guardrail(
    name: str,
    spec: GuardrailSpec,
    *,
    import_function: ImportFunction | None = None,
    plugin_paths: Sequence[Path] | None = None,
    model: ResolvedModel | None = None,
    provider_factory: ProviderFactory | None = None,
) -> Guardrail:
    """One runtime guardrail from its spec. `model` is the resolved Model of a classifier
    guardrail (from its plan binding); `provider_factory` makes its provider (default: a provider
    of its own, from `create_provider`)."""
    if isinstance(spec, PromptInjectionGuardrail):
        return PromptInjectionGuard.from_spec(name, spec)
    if isinstance(spec, LoopDetectionGuardrail):
        return LoopDetector.from_spec(name, spec)
    if isinstance(spec, PiiRedactionGuardrail):
        return PiiRedactor.from_spec(name, spec)
    if isinstance(spec, ToolAllowlistGuardrail):
        return ToolAllowlist.from_spec(name, spec)
    if isinstance(spec, BudgetGuardrail):
        return BudgetGuard.from_spec(name, spec)
    if isinstance(spec, OutputSchemaGuardrail):
        return OutputSchemaGuard.from_spec(name, spec)
    if isinstance(spec, RegexGuardrail):
        return RegexGuard.from_spec(name, spec)
    if isinstance(spec, PythonGuardrail):
        return PythonHookGuard.from_spec(
            name, spec, import_function=import_function, plugin_paths=plugin_paths
        )
    if isinstance(spec, InjectionClassifierGuardrail):
        return InjectionClassifierGuard.from_spec(
            name,
            spec,
            model=model,
            provider_factory=provider_factory,
            import_function=import_function,
            plugin_paths=plugin_paths,
        )
    raise GuardrailConfigError(f"guardrail {name!r}: unknown type {getattr(spec, 'type', spec)!r}")


class _Fold:
    """Verdicts of one stage folded in order: redactions compose, the first block/halt stops."""

    __slots__ = ("context", "decision", "stage", "verdicts")

    def __init__(self, stage: Stage, context: GuardContext) -> None:
        self.stage = stage
        self.context = context if context.stage == stage else replace(context, stage=stage)
        self.verdicts: list[Verdict] = []
        self.decision = Decision.ALLOW

    def add(self, verdict: Verdict) -> bool:
        """Record a verdict; True when the chain stops here."""
        self.verdicts.append(verdict)
        if verdict.decision > self.decision:
            self.decision = verdict.decision
        if verdict.decision is Decision.REDACT and verdict.content is not None:
            self.context = replace(self.context, content=verdict.content, data=None)
            return False
        return verdict.stops

    def result(self) -> GuardResult:
        return GuardResult(self.stage, self.context.content, self.verdicts, self.decision)


def _binding_parts(binding: Any) -> tuple[str, GuardrailSpec, ResolvedModel | None]:
    if isinstance(binding, tuple):
        name, spec = binding
        return name, spec, None
    return binding.name, binding.spec, getattr(binding, "model", None)


class GuardrailSet:
    """An ordered set of guardrails, indexed by stage."""

    __slots__ = ("_by_stage", "guardrails")

    def __init__(self, guardrails: Sequence[Guardrail] = ()) -> None:
        self.guardrails: tuple[Guardrail, ...] = tuple(guardrails)
        self._by_stage: dict[str, tuple[Guardrail, ...]] = {
            stage: tuple(g for g in self.guardrails if g.applies_to(stage)) for stage in STAGES
        }

    @classmethod
    def from_bindings(
        cls,
        bindings: Iterable[Any],
        *,
        import_function: ImportFunction | None = None,
        plugin_paths: Sequence[Path] | None = None,
        provider_factory: ProviderFactory | None = None,
    ) -> GuardrailSet:
        """From the plan's `GuardrailBinding`s (or `(name, spec)` pairs), in declaration order.
        Raises `GuardrailConfigError` when one cannot be built (bad regex, unloadable hook)."""
        built = []
        for binding in bindings:
            name, spec, model = _binding_parts(binding)
            built.append(
                build_guardrail(
                    name,
                    spec,
                    import_function=import_function,
                    plugin_paths=plugin_paths,
                    model=model,
                    provider_factory=provider_factory,
                )
            )
        return cls(built)

    def fresh(self) -> GuardrailSet:
        """The same guardrails with new per-run state (call once per run). An empty set has no
        state: it is its own fresh copy."""
        if not self.guardrails:
            return self
        return GuardrailSet([g.fresh() for g in self.guardrails])

    async def aclose(self) -> None:
        """Release what the guardrails hold (a classifier's connection pool)."""
        for guardrail in self.guardrails:
            await guardrail.aclose()

    def for_stage(self, stage: Stage) -> tuple[Guardrail, ...]:
        return self._by_stage.get(stage, ())

    def applies(self, stage: Stage) -> bool:
        return bool(self._by_stage.get(stage))

    def snapshot(self) -> dict[str, Any]:
        """Per-run state of the stateful guardrails, keyed by name (for checkpoints)."""
        state = {}
        for guardrail in self.guardrails:
            value = guardrail.snapshot()
            if value is not None:
                state[guardrail.name] = value
        return state

    def restore(self, state: Mapping[str, Any]) -> None:
        for guardrail in self.guardrails:
            if guardrail.name in state:
                guardrail.restore(state[guardrail.name])

    async def check(self, stage: Stage, context: GuardContext) -> GuardResult:
        """Apply the stage's guardrails in order (see the module docstring)."""
        fold = _Fold(stage, context)
        for guardrail in self._by_stage.get(stage, ()):
            verdict = (
                await guardrail.acheck(fold.context) if guardrail.is_async else guardrail.check(fold.context)
            )
            if fold.add(verdict):
                break
        return fold.result()

    def check_sync(self, stage: Stage, context: GuardContext) -> GuardResult:
        """`check` for sets without async guardrails at `stage` (no event loop needed)."""
        guardrails = self._by_stage.get(stage, ())
        if any(g.is_async for g in guardrails):
            raise RuntimeError(f"guardrails at stage {stage!r} include async hooks: use `await check(...)`")
        fold = _Fold(stage, context)
        for guardrail in guardrails:
            if fold.add(guardrail.check(fold.context)):
                break
        return fold.result()

    def __len__(self) -> int:
        return len(self.guardrails)

    def __repr__(self) -> str:
        return f"GuardrailSet({', '.join(g.name for g in self.guardrails)})"
