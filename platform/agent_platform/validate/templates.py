"""Template checks: every Jinja2 template parses and uses only variables that exist where it is
rendered. Variables are found through Jinja2's AST (never by rendering user templates here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from agent_platform.diagnostics import did_you_mean
from agent_platform.validate.jsonschemas import property_schema


@lru_cache(maxsize=1)
def template_environment() -> SandboxedEnvironment:
    """The one environment templates are parsed with here and rendered with at run time."""
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


# --- what a template may see ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaVar:
    """A variable whose attributes are described by a JSON Schema (checked where it says)."""

    schema: dict[str, Any] | None
    label: str
    # Attributes must be declared even when the schema lists no properties at all (run inputs:
    # a template may only use what the inputs schema declares).
    declared_only: bool = False


@dataclass(frozen=True, slots=True)
class OpaqueVar:
    """A variable whose attributes are not checked."""


@dataclass(frozen=True, slots=True)
class StepsVar:
    """`steps.<name>.output`: only steps that ran earlier are visible."""

    earlier: dict[str, dict[str, Any] | None]  # step name -> declared output schema
    later: frozenset[str]
    current: str | None = None


Binding = SchemaVar | OpaqueVar | StepsVar


@dataclass
class Scope:
    variables: dict[str, Binding] = field(default_factory=dict)
    context: str = "template"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    line: int  # 1-based line inside the template text
    message: str
    column: int = 0  # 0-based offset in that line
    needle: str | None = None  # the offending text, to find it in the source
    warning: bool = False  # may fail at run time (an error: always fails, or never renders)


def _problem(
    text: str, line: int, message: str, needle: str | None, *, warning: bool = False
) -> TemplateProblem:
    """Pin the problem to where `needle` appears on its line, when it does."""
    lines = text.splitlines()
    if needle and 0 < line <= len(lines) and (column := lines[line - 1].find(needle)) >= 0:
        return TemplateProblem(line, message, column, needle, warning)
    return TemplateProblem(line, message, warning=warning)


# --- the AST walk -----------------------------------------------------------------------------


def _chain(node: nodes.Node) -> tuple[str, list[str]] | None:
    """`a.b['c'].d` -> ('a', ['b', 'c', 'd']); None when not rooted in a plain name."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                parts.append(node.arg.value)
            else:
                parts.clear()  # dynamic index: only what comes before it can be checked
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name, list(reversed(parts))
        else:
            return None


@dataclass(frozen=True, slots=True)
class TemplateAnalysis:
    """What one walk of a template's AST finds; cached per template text (specs repeat them)."""

    filters: tuple[tuple[str, int], ...]  # (name, line)
    tests: tuple[tuple[str, int], ...]
    chains: tuple[tuple[int, str, tuple[str, ...]], ...]  # (line, root, attributes), maximal only
    bound: frozenset[str]  # names assigned inside the template ({% set %}, loop targets, macro args)
    single: tuple[str, tuple[str, ...]] | None  # the chain, when the template is exactly `{{ a.b }}`
    # Chains the template allows to be undefined somewhere: `x | default(...)`, `x is defined`.
    guarded: frozenset[tuple[str, tuple[str, ...]]] = frozenset()


_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})


@lru_cache(maxsize=8192)
def analyse_template(text: str) -> TemplateAnalysis | TemplateProblem:
    """Parse once and walk the tree once (jinja2.meta would run the whole code generator).

    Names bound anywhere in the template count as bound everywhere in it: simpler than Jinja's
    scoping and errs towards silence (a loop variable used after its loop is not reported)."""
    try:
        ast = template_environment().parse(text)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")
    filters: list[tuple[str, int]] = []
    tests: list[tuple[str, int]] = []
    chains: list[tuple[int, str, tuple[str, ...]]] = []
    bound: set[str] = set()
    guarded: set[tuple[str, tuple[str, ...]]] = set()
    stack: list[tuple[nodes.Node, bool]] = [(ast, False)]
    while stack:
        node, inner = stack.pop()
        if isinstance(node, nodes.Name):
            if node.ctx in ("store", "param"):
                bound.add(node.name)
            elif not inner:
                chains.append((node.lineno, node.name, ()))
            continue
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            if not inner and (found := _chain(node)) is not None:
                chains.append((node.lineno, found[0], tuple(found[1])))
            stack.append((node.node, True))
            if isinstance(node, nodes.Getitem):
                stack.append((node.arg, False))
            continue
        if isinstance(node, nodes.For):
            bound.add("loop")  # Jinja's implicit loop variable (loop.index, loop.last, ...)
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            bound.update(("caller", "varargs", "kwargs"))
            if isinstance(node, nodes.Macro):
                bound.add(node.name)
        if isinstance(node, nodes.Filter):
            filters.append((node.name, node.lineno))
        elif isinstance(node, nodes.Test):
            tests.append((node.name, node.lineno))
        if (
            isinstance(node, nodes.Filter | nodes.Test)
            and node.name in (_GUARD_FILTERS if isinstance(node, nodes.Filter) else _GUARD_TESTS)
            and node.node is not None
            and (operand := _chain(node.node)) is not None
        ):
            guarded.add((operand[0], tuple(operand[1])))
        stack.extend((child, False) for child in node.iter_child_nodes())
    chains.sort(key=lambda c: c[0])
    single = None
    body = ast.body
    if len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1:
        found = _chain(body[0].nodes[0])
        single = (found[0], tuple(found[1])) if found is not None else None
    return TemplateAnalysis(
        tuple(filters), tuple(tests), tuple(chains), frozenset(bound), single, frozenset(guarded)
    )


def check_template(text: str, scope: Scope) -> list[TemplateProblem]:
    env = template_environment()
    analysis = analyse_template(text)
    if isinstance(analysis, TemplateProblem):
        return [analysis]
    problems: list[TemplateProblem] = []
    for name, line in analysis.filters:
        if name not in env.filters:
            problems.append(
                _problem(text, line, f"unknown filter '{name}'{did_you_mean(name, env.filters)}", name)
            )
    for name, line in analysis.tests:
        if name not in env.tests:
            problems.append(
                _problem(text, line, f"unknown test '{name}'{did_you_mean(name, env.tests)}", name)
            )
    seen: set[str] = set()
    for line, root, attrs in analysis.chains:
        if root in analysis.bound:
            continue
        chain_problem = _check_chain(root, list(attrs), scope)
        warning = False
        if chain_problem is None:
            chain_problem = _unguarded_optional_input(root, attrs, scope, analysis.guarded)
            warning = True
        if chain_problem is not None and chain_problem not in seen:
            seen.add(chain_problem)
            needle = ".".join([root, *attrs])
            problems.append(
                _problem(text, line, chain_problem, needle if needle in text else root, warning=warning)
            )
    return problems


def _unguarded_optional_input(
    root: str, attrs: tuple[str, ...], scope: Scope, guarded: frozenset[tuple[str, tuple[str, ...]]]
) -> str | None:
    """A run input the schema lets a caller leave out, with no default to fill in, used where
    strict undefined makes rendering fail when it is left out. Unless the template guards it
    somewhere (`| default(...)`, `is defined`): checked per template, not per use, so that an
    `{% if inputs.x is defined %}` around the use keeps this quiet."""
    binding = scope.variables.get(root)
    if not attrs or not isinstance(binding, SchemaVar) or not binding.declared_only or binding.schema is None:
        return None
    name = attrs[0]
    declared = binding.schema.get("properties")
    field_schema = declared.get(name) if isinstance(declared, dict) else None
    if not isinstance(field_schema, dict) or "default" in field_schema:
        return None
    required = binding.schema.get("required") or ()
    if name in required or any(g[0] == root and g[1][:1] == (name,) for g in guarded):
        return None
    return (
        f"'{root}.{name}' is optional in {binding.label} and has no default: a run that leaves it out "
        f"fails to render (give it a default, make it required, or write "
        f"`{{{{ {root}.{name} | default(...) }}}}`)"
    )


def _check_chain(root: str, attrs: list[str], scope: Scope) -> str | None:
    binding = scope.variables.get(root)
    if binding is None:
        if root in template_environment().globals:
            return None
        available = ", ".join(sorted(scope.variables)) or "none"
        inputs = scope.variables.get("inputs")
        declared = (inputs.schema or {}).get("properties", {}) if isinstance(inputs, SchemaVar) else {}
        if isinstance(declared, dict) and root in declared:
            hint = f" (did you mean 'inputs.{root}'?)"
        else:
            hint = did_you_mean(root, scope.variables)
        return f"unknown variable '{root}' in {scope.context} (available: {available}){hint}"
    if isinstance(binding, OpaqueVar) or not attrs:
        return None
    if isinstance(binding, SchemaVar):
        if binding.schema is None:
            return None
        if binding.declared_only and "properties" not in binding.schema:
            return f"'{root}.{attrs[0]}' is not declared in {binding.label} (it declares no properties)"
        undeclared = _undeclared(binding.schema, attrs)
        if undeclared is None:
            return None
        return f"'{root}.{undeclared[0]}' is not declared in {binding.label}{undeclared[1]}"
    # StepsVar
    step = attrs[0]
    if step == binding.current:
        return f"'steps.{step}' refers to the step itself; a step can only use earlier steps"
    if step in binding.later:
        return f"'steps.{step}' runs after this point; only earlier steps' outputs are available"
    if step not in binding.earlier:
        return f"unknown step '{step}'{did_you_mean(step, list(binding.earlier) + list(binding.later))}"
    if len(attrs) == 1:
        return None
    if attrs[1] != "output":
        return f"'steps.{step}.{attrs[1]}' is not available; use 'steps.{step}.output'"
    schema = binding.earlier[step]
    undeclared = _undeclared(schema, attrs[2:]) if schema is not None and len(attrs) > 2 else None
    if undeclared is None:
        return None
    return (
        f"'steps.{step}.output.{undeclared[0]}' is not in the output schema of step '{step}'{undeclared[1]}"
    )


def _undeclared(schema: dict[str, Any], attrs: list[str]) -> tuple[str, str] | None:
    """(the first attribute path not declared in `schema`, a did-you-mean suffix), or None."""
    _, missing = property_schema(schema, attrs)
    if missing is None:
        return None
    parts = missing.split(".")
    parent, _ = property_schema(schema, parts[:-1])
    return missing, did_you_mean(parts[-1], list((parent or {}).get("properties", {}) or {}))


def single_expression(text: str) -> tuple[str, list[str]] | None:
    """For a template that is exactly one `{{ a.b.c }}`, the variable chain; else None.

    Such a value keeps its type when rendered (a list stays a list), which also lets the compiler
    compare the producer's schema with the consumer's."""
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or stripped.count("{{") != 1:
        return None
    analysis = analyse_template(stripped)
    if isinstance(analysis, TemplateProblem) or analysis.single is None:
        return None
    return analysis.single[0], list(analysis.single[1])
