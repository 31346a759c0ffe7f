"""Template checks: every Jinja2 template parses, uses only variables that exist where it is
rendered, and breaks none of the sandbox's resource limits that its text shows (a literal
`'x' * 10**9`, format width or range: see `agent_platform._template_sandbox`). Everything is found
through Jinja2's AST (never by rendering user templates here)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import find_undeclared

from agent_platform._diagnostics import did_you_mean
from agent_platform._template_sandbox import BoundedEnvironment, bounded_environment, static_limit_problems
from agent_platform._validate.jsonschemas import properties_of, property_schema


def template_environment() -> BoundedEnvironment:
    """The one environment templates are parsed with here and rendered with at run time."""
    return bounded_environment()


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
    lines: Sequence[str], line: int, message: str, needle: str | None, *, warning: bool = False
) -> TemplateProblem:
    """Pin the problem to where `needle` appears on its line (of the template's `lines`), when it
    does."""
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
    # Resource limits the text itself breaks (errors whatever the variables hold).
    over_limits: tuple[TemplateProblem, ...] = ()
    # What Jinja's compiler or a loader-less environment refuses at run time although it parses.
    uncompilable: tuple[TemplateProblem, ...] = ()


_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})
# At most this many problems are reported per template (each is located by searching the file):
# a template that repeats one mistake thousands of times gets a count, not thousands of lines.
MAX_PROBLEMS_PER_TEMPLATE = 20
_LOADING_NODES: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}


def _uncompilable(lines: Sequence[str], node: nodes.Node, blocks: dict[str, int]) -> TemplateProblem | None:
    """What Jinja's code generator rejects in `node` (its `TemplateAssertionError`s), and tags that
    load other templates, which spec templates have nowhere to load from: each fails at run time,
    and `validate` only parses."""
    if type(node) in _LOADING_NODES:
        tag = _LOADING_NODES[type(node)]
        return _problem(
            lines,
            node.lineno,
            f"'{{% {tag} %}}' loads another template, and spec templates have none to load: "
            "write the text inline, or use a macro defined in this template",
            tag.split()[0],
        )
    if isinstance(node, nodes.Block):
        if node.name in blocks:  # the walk is not in source order: report at the later one
            first, again = sorted((blocks[node.name], node.lineno))
            blocks[node.name] = first
            return _problem(
                lines, again, f"block '{node.name}' defined twice (first at line {first})", node.name
            )
        blocks[node.name] = node.lineno
    elif isinstance(node, nodes.For):
        # Jinja's own rule: no name stored anywhere inside a loop may be 'loop'.
        for target in node.find_all(nodes.Name):
            if target.ctx == "store" and target.name == "loop":
                return _problem(
                    lines, node.lineno, "a for loop cannot assign to 'loop' (Jinja's loop variable)", "loop"
                )
    elif isinstance(node, nodes.Macro | nodes.CallBlock):
        names = [arg.name for arg in node.args]
        if (
            "caller" in names
            and names.index("caller") < len(names) - len(node.defaults)
            and "caller" in find_undeclared(node.body, ("caller",))  # the body calls it: Jinja's rule
        ):
            return _problem(
                lines,
                node.lineno,
                "the 'caller' argument of a macro or call block must have a default",
                "caller",
            )
    return None


@lru_cache(maxsize=8192)
def analyse_template(text: str) -> TemplateAnalysis | TemplateProblem:
    """Parse once and walk the tree once (jinja2.meta would run the whole code generator).

    Names bound anywhere in the template count as bound everywhere in it: simpler than Jinja's
    scoping and errs towards silence (a loop variable used after its loop is not reported)."""
    try:
        ast = template_environment().parse(text)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno or 1, f"template syntax error: {exc.message}")
    lines = text.splitlines()
    over_limits = tuple(_problem(lines, p.line, p.message, p.needle) for p in static_limit_problems(ast))
    filters: list[tuple[str, int]] = []
    tests: list[tuple[str, int]] = []
    chains: list[tuple[int, str, tuple[str, ...]]] = []
    bound: set[str] = set()
    guarded: set[tuple[str, tuple[str, ...]]] = set()
    uncompilable: list[TemplateProblem] = []
    blocks: dict[str, int] = {}
    stack: list[tuple[nodes.Node, bool]] = [(ast, False)]
    while stack:
        node, inner = stack.pop()
        if isinstance(node, nodes.Stmt) and (refused := _uncompilable(lines, node, blocks)) is not None:
            uncompilable.append(refused)
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
    uncompilable.sort(key=lambda problem: problem.line)
    return TemplateAnalysis(
        tuple(filters),
        tuple(tests),
        tuple(chains),
        frozenset(bound),
        single,
        frozenset(guarded),
        over_limits,
        tuple(uncompilable),
    )


class _Collected:
    """A template's problems: the first MAX_PROBLEMS_PER_TEMPLATE located, the rest only counted
    (locating one searches the template's line, and a template may repeat a mistake thousands of
    times)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.kept: list[TemplateProblem] = []
        self.left_out = 0
        self.left_out_are_warnings = True

    def has_room(self) -> bool:
        return len(self.kept) < MAX_PROBLEMS_PER_TEMPLATE

    def add(self, line: int, message: str, needle: str | None, *, warning: bool = False) -> None:
        if len(self.kept) < MAX_PROBLEMS_PER_TEMPLATE:
            self.kept.append(_problem(self.lines, line, message, needle, warning=warning))
        else:
            self.left_out += 1
            self.left_out_are_warnings = self.left_out_are_warnings and warning

    def extend(self, problems: Sequence[TemplateProblem]) -> None:
        room = MAX_PROBLEMS_PER_TEMPLATE - len(self.kept)
        self.kept.extend(problems[:room])
        for problem in problems[room:]:
            self.left_out += 1
            self.left_out_are_warnings = self.left_out_are_warnings and problem.warning

    def result(self) -> list[TemplateProblem]:
        if not self.left_out:
            return self.kept
        last = self.kept[-1]
        plural = "s" if self.left_out != 1 else ""
        summary = f"... and {self.left_out:,} more problem{plural} in this template"
        return [
            *self.kept,
            TemplateProblem(last.line, summary, last.column, last.needle, self.left_out_are_warnings),
        ]


def check_template(text: str, scope: Scope) -> list[TemplateProblem]:
    """The template's problems in `scope`: at most MAX_PROBLEMS_PER_TEMPLATE, then one saying how
    many more there are."""
    env = template_environment()
    analysis = analyse_template(text)
    if isinstance(analysis, TemplateProblem):
        return [analysis]
    found = _Collected(text)
    found.extend(analysis.over_limits)
    found.extend(analysis.uncompilable)
    for name, line in analysis.filters:
        if name not in env.filters:
            found.add(line, f"unknown filter '{name}'{did_you_mean(name, env.filters)}", name)
    for name, line in analysis.tests:
        if name not in env.tests:
            found.add(line, f"unknown test '{name}'{did_you_mean(name, env.tests)}", name)
    seen: set[str] = set()  # each problem once, told apart by its message without suggestions
    for line, root, attrs in analysis.chains:
        if root in analysis.bound:
            continue
        chain_problem = _check_chain(root, list(attrs), scope, _no_suggestion)
        warning = False
        if chain_problem is None:
            chain_problem = _unguarded_optional_input(root, attrs, scope, analysis.guarded)
            warning = True
        if chain_problem is None or chain_problem in seen:
            continue
        seen.add(chain_problem)
        if found.has_room() and not warning:  # suggestions are worth their cost only when shown
            chain_problem = _check_chain(root, list(attrs), scope, did_you_mean) or chain_problem
        needle = ".".join([root, *attrs])
        on_line = 0 < line <= len(found.lines) and needle in found.lines[line - 1]
        found.add(line, chain_problem, needle if on_line else root, warning=warning)
    return found.result()


def _no_suggestion(word: str, candidates: Any) -> str:
    return ""


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
    required = binding.schema.get("required") or []
    if not isinstance(required, list):
        return None  # the schema is invalid (reported as such): whether it is required is unknown
    if name in required or any(g[0] == root and g[1][:1] == (name,) for g in guarded):
        return None
    return (
        f"'{root}.{name}' is optional in {binding.label} and has no default: a run that leaves it out "
        f"fails to render (give it a default, make it required, or write "
        f"`{{{{ {root}.{name} | default(...) }}}}`)"
    )


Suggest = Callable[[str, Iterable[str]], str]


def _check_chain(root: str, attrs: list[str], scope: Scope, suggest: Suggest = did_you_mean) -> str | None:
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
            hint = suggest(root, scope.variables)
        return f"unknown variable '{root}' in {scope.context} (available: {available}){hint}"
    if isinstance(binding, OpaqueVar) or not attrs:
        return None
    if isinstance(binding, SchemaVar):
        if binding.schema is None:
            return None
        if binding.declared_only and "properties" not in binding.schema:
            return f"'{root}.{attrs[0]}' is not declared in {binding.label} (it declares no properties)"
        undeclared = _undeclared(binding.schema, attrs, suggest)
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
        return f"unknown step '{step}'{suggest(step, list(binding.earlier) + list(binding.later))}"
    if len(attrs) == 1:
        return None
    if attrs[1] != "output":
        return f"'steps.{step}.{attrs[1]}' is not available; use 'steps.{step}.output'"
    schema = binding.earlier[step]
    undeclared = _undeclared(schema, attrs[2:], suggest) if schema is not None and len(attrs) > 2 else None
    if undeclared is None:
        return None
    return (
        f"'steps.{step}.output.{undeclared[0]}' is not in the output schema of step '{step}'{undeclared[1]}"
    )


def _undeclared(schema: dict[str, Any], attrs: list[str], suggest: Suggest) -> tuple[str, str] | None:
    """(the first attribute path not declared in `schema`, a did-you-mean suffix), or None."""
    _, missing = property_schema(schema, attrs)
    if missing is None:
        return None
    parts = missing.split(".")
    parent, _ = property_schema(schema, parts[:-1])
    return missing, suggest(parts[-1], properties_of(parent)) + _MAPPING_METHOD_HINTS.get(parts[-1], "")


# A template reads a mapping's key before its method of the same name (the run's data decides
# which one `.items` is), so the methods are not read from declared data; what to write instead.
_MAPPING_METHOD_HINTS = {
    name: f" ('.{name}' reads a key named '{name}', not the method: {instead})"
    for name, instead in {
        "items": "for the key-value pairs, write `| items`",
        "keys": "for the keys, write `| list`",
        "values": "for the values, write `| items | map(attribute=1)`",
        "get": "for a property that may be missing, write `| default(...)` after it",
    }.items()
}


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
