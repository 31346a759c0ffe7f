"""Template checks: every Jinja2 template parses and uses only variables that exist where it is
rendered. Variables are found through Jinja2's AST (never by rendering user templates here)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
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


def _problem(text: str, line: int, message: str, needle: str | None) -> TemplateProblem:
    """Pin the problem to where `needle` appears on its line, when it does."""
    lines = text.splitlines()
    if needle and 0 < line <= len(lines) and (column := lines[line - 1].find(needle)) >= 0:
        return TemplateProblem(line, message, column, needle)
    return TemplateProblem(line, message)


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


def _chains(ast: nodes.Template) -> Iterator[tuple[int, str, list[str]]]:
    """Maximal attribute chains (a.b.c but not also a.b) with their line numbers."""
    inner: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        inner.add(id(node.node))  # type: ignore[attr-defined]
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if id(node) in inner:
            continue
        if isinstance(node, nodes.Name) and node.ctx != "load":
            continue
        found = _chain(node)
        if found is not None:
            yield node.lineno, found[0], found[1]


def check_template(text: str, scope: Scope) -> list[TemplateProblem]:
    env = template_environment()
    try:
        ast = env.parse(text)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")]
    problems: list[TemplateProblem] = []
    for node in ast.find_all(nodes.Filter):
        if node.name not in env.filters:
            message = f"unknown filter '{node.name}'{did_you_mean(node.name, env.filters)}"
            problems.append(_problem(text, node.lineno, message, node.name))
    for test in ast.find_all(nodes.Test):
        if test.name not in env.tests:
            message = f"unknown test '{test.name}'{did_you_mean(test.name, env.tests)}"
            problems.append(_problem(text, test.lineno, message, test.name))
    undeclared: set[str]
    try:
        undeclared = meta.find_undeclared_variables(ast)
    except TemplateSyntaxError:  # raised for the unknown filters/tests reported above
        stored = {str(n.name) for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
        undeclared = {str(n.name) for n in ast.find_all(nodes.Name) if n.ctx == "load"} - stored
    seen: set[str] = set()
    for line, root, attrs in _chains(ast):
        if root not in undeclared:
            continue  # bound inside the template ({% set %}, {% for %}, macro arguments)
        chain_problem = _check_chain(root, attrs, scope)
        if chain_problem is not None and chain_problem not in seen:
            seen.add(chain_problem)
            needle = ".".join([root, *attrs])
            problems.append(_problem(text, line, chain_problem, needle if needle in text else root))
    return problems


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
        _, missing = property_schema(binding.schema, attrs) if binding.schema is not None else (None, None)
        if missing is not None:
            last = missing.split(".")[-1]
            parent_schema, _ = property_schema(binding.schema, missing.split(".")[:-1])
            declared = list((parent_schema or {}).get("properties", {}) or {})
            return f"'{root}.{missing}' is not declared in {binding.label}{did_you_mean(last, declared)}"
        if (
            binding.schema is not None
            and "properties" not in binding.schema
            and binding.label.startswith("the inputs")
        ):
            return f"'{root}.{attrs[0]}' is not declared in {binding.label} (it declares no properties)"
        return None
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
    if schema is not None and len(attrs) > 2:
        _, missing = property_schema(schema, attrs[2:])
        if missing is not None:
            last = missing.split(".")[-1]
            parent_schema, _ = property_schema(schema, missing.split(".")[:-1])
            declared = list((parent_schema or {}).get("properties", {}) or {})
            return f"'steps.{step}.output.{missing}' is not in the output schema of step '{step}'{did_you_mean(last, declared)}"
    return None


def single_expression(text: str) -> tuple[str, list[str]] | None:
    """For a template that is exactly one `{{ a.b.c }}`, the variable chain; else None.

    Such a value keeps its type when rendered (a list stays a list), which also lets the compiler
    compare the producer's schema with the consumer's."""
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or stripped.count("{{") != 1:
        return None
    try:
        ast = template_environment().parse(stripped)
    except TemplateSyntaxError:
        return None
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output) or len(ast.body[0].nodes) != 1:
        return None
    return _chain(ast.body[0].nodes[0])
