"""Allow-list, budget, regex, output schema and python-hook guardrails."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent_platform._runtime.guardrails import (
    BudgetGuard,
    GuardContext,
    GuardrailConfigError,
    OutputSchemaGuard,
    PythonHookGuard,
    RegexGuard,
    RunUsage,
    ToolAllowlist,
    Verdict,
    load_hook,
)
from agent_platform._runtime.guardrails.base import Decision
from agent_platform._runtime.models.base import Usage
from agent_platform._spec.kinds import (
    BudgetGuardrail,
    OutputSchemaGuardrail,
    PythonGuardrail,
    RegexGuardrail,
    ToolAllowlistGuardrail,
)

# --- tool allow-list --------------------------------------------------------------------------


def test_allowlist_blocks_tools_outside_the_list() -> None:
    spec = ToolAllowlistGuardrail.model_validate({"type": "tool_allowlist", "tools": ["web-search"]})
    guard = ToolAllowlist.from_spec("least-privilege", spec)
    assert guard.check(GuardContext.for_action("web-search", {"q": "x"})).allowed
    verdict = guard.check(GuardContext.for_action("send-email", {"to": "x"}))
    assert verdict.decision is Decision.BLOCK
    assert "send-email" in verdict.reason and "web-search" in verdict.reason
    # delegations and the final answer are governed elsewhere
    assert guard.check(GuardContext.for_action("helper", {}, action_kind="delegate")).allowed
    assert guard.check(GuardContext.for_action("final_answer", {}, action_kind="final_answer")).allowed


def test_empty_allowlist_allows_no_tool() -> None:
    guard = ToolAllowlist("none", [], action="halt")
    assert guard.check(GuardContext.for_action("anything", {})).decision is Decision.HALT


# --- budget -----------------------------------------------------------------------------------


def test_run_usage_accumulates() -> None:
    usage = RunUsage()
    usage.add_model_call(Usage(100, 20), 0.01)
    usage.add_model_call(Usage(50, 5), 0.02)
    usage.add_tool_call()
    assert (usage.tokens, usage.input_tokens, usage.output_tokens, usage.model_calls) == (175, 150, 25, 2)
    assert usage.cost_usd == pytest.approx(0.03) and usage.tool_calls == 1


@pytest.mark.parametrize(
    ("usage", "budget"),
    [
        (RunUsage(tokens=1000), "tokens"),
        (RunUsage(tokens=10, cost_usd=0.5), "cost_usd"),
        (RunUsage(tokens=10, tool_calls=3), "tool_calls"),
    ],
)
def test_budget_halts(usage: RunUsage, budget: str) -> None:
    spec = BudgetGuardrail.model_validate(
        {"type": "budget", "max_total_tokens": 1000, "max_cost_usd": 0.5, "max_tool_calls": 3}
    )
    guard = BudgetGuard.from_spec("budget", spec)
    verdict = guard.check(GuardContext.for_action("t", {}, usage=usage))
    assert verdict.decision is Decision.HALT
    assert verdict.details["budget"] == budget


def test_budget_allows_within_limits_and_final_answer() -> None:
    guard = BudgetGuard("budget", max_total_tokens=1000, max_tool_calls=3, action="warn")
    assert guard.check(GuardContext.for_action("t", {}, usage=RunUsage(tokens=999, tool_calls=2))).allowed
    over = RunUsage(tokens=5000, tool_calls=9)
    assert guard.check(GuardContext.for_action("t", {}, usage=over)).decision is Decision.WARN
    final = GuardContext.for_action("final_answer", {}, action_kind="final_answer", usage=over)
    assert guard.check(final).allowed
    # tool-call budgets do not count delegations
    delegate = GuardContext.for_action("helper", {}, action_kind="delegate", usage=RunUsage(tool_calls=9))
    assert guard.check(delegate).allowed


# --- regex ------------------------------------------------------------------------------------


def test_regex_redacts_with_replacement() -> None:
    spec = RegexGuardrail.model_validate(
        {
            "type": "regex",
            "applies_to": ["output"],
            "action": "redact",
            "patterns": [r"sk-[A-Za-z0-9]{8,}", r"(?i)internal-only"],
            "replacement": "<secret>",
        }
    )
    guard = RegexGuard.from_spec("secrets", spec)
    verdict = guard.check(GuardContext("output", "key sk-abcdefgh12 and INTERNAL-ONLY and sk-zzzzzzzzz"))
    assert verdict.decision is Decision.REDACT
    assert verdict.content == "key <secret> and <secret> and <secret>"
    assert verdict.details["matches"] == 3
    assert guard.check(GuardContext("output", "nothing here")).allowed


@pytest.mark.parametrize("action", ["block", "warn", "halt"])
def test_regex_other_actions(action: str) -> None:
    guard = RegexGuard("r", [r"\bDROP TABLE\b"], action=action)
    verdict = guard.check(GuardContext("output", "x; DROP TABLE users"))
    assert verdict.decision is Decision.parse(action) and verdict.content is None
    assert "DROP" not in verdict.reason  # never echo the matched text


def test_regex_invalid_pattern_is_a_config_error() -> None:
    with pytest.raises(GuardrailConfigError, match="not a valid regex"):
        RegexGuard("r", ["(unclosed"])


# --- output schema ----------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string", "minLength": 1}, "score": {"type": "number"}},
    "required": ["summary"],
}


def test_output_schema_validates_data_and_json_content() -> None:
    spec = OutputSchemaGuardrail.model_validate(
        {"type": "output_schema", "applies_to": ["output", "tool_output"], "schema": SCHEMA}
    )
    guard = OutputSchemaGuard.from_spec("shape", spec)
    assert guard.check(GuardContext("output", data={"summary": "ok", "score": 1})).allowed
    assert guard.check(GuardContext("tool_output", '{"summary": "ok"}')).allowed
    verdict = guard.check(GuardContext("output", data={"summary": "", "score": "high"}))
    assert verdict.decision is Decision.BLOCK
    assert "$.score" in verdict.reason and "$.summary" in verdict.reason
    not_json = guard.check(GuardContext("tool_output", "plain text"))
    assert not_json.decision is Decision.BLOCK and "tool output does not match" in not_json.reason


def test_output_schema_warn_and_halt() -> None:
    assert OutputSchemaGuard("s", SCHEMA, action="warn").check(GuardContext("output", data={})).decision is (
        Decision.WARN
    )
    assert OutputSchemaGuard("s", SCHEMA, action="halt").check(GuardContext("output", data=[])).decision is (
        Decision.HALT
    )


def test_output_schema_rejects_invalid_schema() -> None:
    with pytest.raises(GuardrailConfigError):
        OutputSchemaGuard("s", {"type": 12})


# --- python hook ------------------------------------------------------------------------------


def _run(guard: PythonHookGuard, context: GuardContext) -> Verdict:
    return asyncio.run(guard.acheck(context))


def test_python_hook_return_contract() -> None:
    ctx = GuardContext("output", "hello")
    cases: list[tuple[Any, Decision]] = [
        (None, Decision.ALLOW),
        (True, Decision.ALLOW),
        (False, Decision.BLOCK),  # the configured action
        ({"decision": "warn", "reason": "meh"}, Decision.WARN),
        ({"decision": "redact", "content": "HELLO"}, Decision.REDACT),
        ({"decision": "redact"}, Decision.BLOCK),  # redact without content cannot redact
        ({"reason": "no"}, Decision.BLOCK),
        (Verdict.halt("other", "x", "stop"), Decision.HALT),
        (42, Decision.BLOCK),  # unexpected: fail closed
        ({"decision": "explode"}, Decision.BLOCK),
    ]
    for returned, decision in cases:

        def hook(_: GuardContext, returned: Any = returned) -> Any:
            return returned

        guard = PythonHookGuard("hook", hook, ref="m:f")
        verdict = _run(guard, ctx)
        assert verdict.decision is decision, returned
        assert verdict.guardrail == "hook" and verdict.type == "python"
    redacted = _run(PythonHookGuard("hook", lambda _c: {"decision": "redact", "content": "X"}), ctx)
    assert redacted.content == "X"


def test_python_hook_async_errors_and_timeout_fail_closed() -> None:
    async def slow(_: GuardContext) -> None:
        await asyncio.sleep(10)

    async def ok(ctx: GuardContext) -> dict[str, str]:
        return {"decision": "warn", "reason": f"saw {ctx.content}"}

    def boom(_: GuardContext) -> None:
        raise RuntimeError("bug in hook")

    ctx = GuardContext("output", "x")
    assert _run(PythonHookGuard("h", ok), ctx).reason == "saw x"
    timed_out = _run(PythonHookGuard("h", slow, timeout=0.05, action="halt"), ctx)
    assert timed_out.decision is Decision.HALT and "no answer within" in timed_out.reason
    failed = _run(PythonHookGuard("h", boom, action="warn"), ctx)
    assert failed.decision is Decision.BLOCK and "RuntimeError: bug in hook" in failed.reason


def test_python_hook_loads_from_plugin_path(tmp_path: Path) -> None:
    package = tmp_path / "guard_plugins_t1"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "checks.py").write_text(
        textwrap.dedent(
            """
            def no_shouting(context):
                if context.content and context.content.isupper():
                    return {"decision": "redact", "content": context.content.lower(), "reason": "shouting"}
                return None
            """
        )
    )
    spec = PythonGuardrail.model_validate(
        {"type": "python", "applies_to": ["output"], "function": "guard_plugins_t1.checks:no_shouting"}
    )
    try:
        guard = PythonHookGuard.from_spec("calm", spec, plugin_paths=[tmp_path])
        verdict = _run(guard, GuardContext("output", "HELLO"))
        assert verdict.decision is Decision.REDACT and verdict.content == "hello"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("guard_plugins_t1")]:
            del sys.modules[name]


def test_python_hook_with_import_function_and_load_errors() -> None:
    def importer(ref: str) -> Any:
        assert ref == "pkg.mod:fn"
        return lambda ctx: False

    assert callable(load_hook("pkg.mod:fn", import_function=importer))
    with pytest.raises(GuardrailConfigError, match="cannot load"):
        load_hook("no_such_module_xyz:fn")
    with pytest.raises(GuardrailConfigError, match="not 'module:function'"):
        load_hook("nocolon")
    with pytest.raises(GuardrailConfigError, match="not callable"):
        load_hook("x:y", import_function=lambda ref: 3)
