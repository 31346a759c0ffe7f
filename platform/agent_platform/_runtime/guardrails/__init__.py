"""Guardrails: checks at the input, action, tool_output and output stages of a run.

The agent loop uses `GuardrailSet` (engine.py) and the injection boundary (`wrap_tool_output`,
`BOUNDARY_INSTRUCTIONS`); everything else is the individual guardrail types. Injection detection
is pluggable: patterns (`prompt_injection`, injection.py) or a classifier (`injection_classifier`,
classifier.py: a Model, or a local Python function typed `ClassifierInput -> InjectionVerdict`)."""

from agent_platform._runtime.guardrails.allowlist import ToolAllowlist
from agent_platform._runtime.guardrails.base import (
    STAGES,
    ActionKind,
    Decision,
    GuardContext,
    Guardrail,
    GuardrailConfigError,
    Stage,
    Verdict,
)
from agent_platform._runtime.guardrails.budget import BudgetGuard, RunUsage
from agent_platform._runtime.guardrails.classifier import (
    ClassifierInput,
    InjectionClassifierGuard,
    InjectionVerdict,
)
from agent_platform._runtime.guardrails.engine import GuardrailSet, GuardResult, build_guardrail
from agent_platform._runtime.guardrails.injection import (
    BOUNDARY_INSTRUCTIONS,
    DEFAULT_PATTERNS,
    InjectionDetector,
    InjectionPattern,
    PromptInjectionGuard,
    wrap_tool_output,
)
from agent_platform._runtime.guardrails.loop import LoopDetector, action_key, canonical_json
from agent_platform._runtime.guardrails.output_schema import OutputSchemaGuard
from agent_platform._runtime.guardrails.pii import PiiRedactor, find_pii
from agent_platform._runtime.guardrails.python_hook import PythonHookGuard, load_hook
from agent_platform._runtime.guardrails.regex import RegexGuard

__all__ = [
    "BOUNDARY_INSTRUCTIONS",
    "DEFAULT_PATTERNS",
    "STAGES",
    "ActionKind",
    "BudgetGuard",
    "ClassifierInput",
    "Decision",
    "GuardContext",
    "GuardResult",
    "Guardrail",
    "GuardrailConfigError",
    "GuardrailSet",
    "InjectionClassifierGuard",
    "InjectionDetector",
    "InjectionPattern",
    "InjectionVerdict",
    "LoopDetector",
    "OutputSchemaGuard",
    "PiiRedactor",
    "PromptInjectionGuard",
    "PythonHookGuard",
    "RegexGuard",
    "RunUsage",
    "Stage",
    "ToolAllowlist",
    "Verdict",
    "action_key",
    "build_guardrail",
    "canonical_json",
    "find_pii",
    "load_hook",
    "wrap_tool_output",
]
