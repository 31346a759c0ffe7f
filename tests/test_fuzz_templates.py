"""`validate` only parses templates; the runtime compiles and renders them. Fuzzers over generated
templates check that the two agree:

- every statement and expression form, nested up to past every bound: a template Jinja's compiler
  refuses (or Python refuses the code Jinja generates for it) is a validate error, and checking
  one never raises;
- the same templates rendered over variables of any value end in text or a located template error
  (a bound, an undefined variable, a type error), never another exception;
- templates that use declared inputs as their types allow (loops, filters, macros, inputs named
  like mapping methods): validate passes them and rendering them succeeds."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform._runtime.rendering import TemplateRenderError, render, render_value
from agent_platform._template_sandbox import bounded_environment
from agent_platform._validate.templates import OpaqueVar, SchemaVar, Scope, check_template

EXAMPLES = int(os.environ.get("FUZZ_TEMPLATE_EXAMPLES", "300"))
SCOPE = Scope({"x": OpaqueVar(), "y": OpaqueVar(), "inputs": OpaqueVar()}, "a template")

LEAVES = st.sampled_from(["x", "y", "inputs.a", "1", "'s'", "[]", "none", "loop.index", "caller()"])
# Each wraps an expression `e` in one more level.
WRAPPERS = st.sampled_from(
    [
        "({e})", "[{e}]", "{{'k': {e}}}", "{e}|upper", "{e}|nosuch", "{e}.a", "{e}['b']", "{e}[1:2]",
        "f({e})", "dict(a={e})", "not {e}", "-{e}", "{e} + x", "{e} ~ 's'", "{e} if y else 1",
        "{e} is defined", "{e} is nosuchtest", "{e} and x", "{e} < 3", "{e}**2", "range({e})|list",
    ]
)  # fmt: skip
# Each wraps a body `b` in one more statement.
STATEMENTS = st.sampled_from(
    [
        "{{% for a in x %}}{b}{{% endfor %}}", "{{% for a in x recursive %}}{b}{{{{ loop(a) }}}}{{% endfor %}}",
        "{{% for loop in x %}}{b}{{% endfor %}}", "{{% if y %}}{b}{{% else %}}{{% endif %}}",
        "{{% with v = 1 %}}{b}{{% endwith %}}", "{{% filter upper %}}{b}{{% endfilter %}}",
        "{{% set s %}}{b}{{% endset %}}", "{{% macro m(c) %}}{b}{{% endmacro %}}",
        "{{% macro m(caller) %}}{b}{{{{ caller() }}}}{{% endmacro %}}", "{{% call(u) f() %}}{b}{{% endcall %}}",
        "{{% block k %}}{b}{{% endblock %}}", "{b}{{% include 'other' %}}", "{b}{{% import 'm' as m %}}",
        "{{% extends 'base' %}}{b}", "{{% raw %}}{{{{{b}{{% endraw %}}", "{b}{{% set loop = 1 %}}",
    ]
)  # fmt: skip


@st.composite
def templates(draw: st.DrawFn) -> str:
    expression = draw(LEAVES)
    for wrapper in draw(st.lists(WRAPPERS, max_size=80)):
        expression = wrapper.format(e=expression)
    body = "{{ " + expression + " }}" + draw(st.sampled_from(["", "text", "{# note #}", "{%"]))
    for statement in draw(st.lists(STATEMENTS, max_size=40)):
        body = statement.format(b=body)
    return body


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=templates())
def test_a_template_that_does_not_compile_is_a_validate_error(template: str) -> None:
    problems = check_template(template, SCOPE)
    has_error = any(not problem.warning for problem in problems)
    try:
        bounded_environment().from_string(template)
    except Exception as exc:  # whatever the compiler raises, validate must have said so
        assert has_error, f"validate passed a template that does not compile: {type(exc).__name__}: {exc}"


# --- the differential: validate's verdict against what rendering does ----------------------------

WHERE = "Agent/a: spec.instructions"
INPUTS_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "n": {"type": "integer"},
        # named like the methods of a mapping: a template reads the input, never the method
        "items": {"type": "array", "items": {"type": "string"}},
        "keys": {"type": "string"},
        "values": {"type": "array", "items": {"type": "string"}},
        "obj": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    },
    "required": ["name", "n", "items", "keys", "values", "obj"],
}
TYPED_SCOPE = Scope(
    {"inputs": SchemaVar(INPUTS_SCHEMA, "the inputs schema", declared_only=True)}, "a template"
)
WIDE_SCOPE = Scope({**SCOPE.variables, "inputs": TYPED_SCOPE.variables["inputs"]}, "a template")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
INPUTS = st.fixed_dictionaries(
    {
        "name": st.text(max_size=10),
        "n": st.integers(-5, 50),
        "items": st.lists(st.text(max_size=5), max_size=4),
        "keys": st.text(max_size=5),
        "values": st.lists(st.text(max_size=5), max_size=4),
        "obj": st.fixed_dictionaries({"a": st.text(max_size=5)}),
    }
)


def _validate_then_render(template: str, scope: Scope, context: dict[str, Any]) -> tuple[bool, str | None]:
    """(validate passed, the render's error or None); anything but a located template error from
    rendering is an internal error, and fails the test."""
    passed = not [problem for problem in check_template(template, scope) if not problem.warning]
    error = None
    # `render_value` is what step inputs and `map.over` go through: `{{ expr }}` alone keeps its
    # type by another compilation of the expression.
    for renderer in (render, render_value):
        try:
            renderer(template, context, where=WHERE)
        except TemplateRenderError as exc:
            assert exc.where == WHERE and str(exc).startswith(f"{WHERE}: "), str(exc)
            error = error or str(exc)
    return passed, error


# Any expression and statement, over variables of any value: validate may pass a template that
# fails at run time on its values (`x + 1` with a string x), but the failure is a located template
# error (a bound, an undefined variable, a type error), never an exception of another kind.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=templates(), x=JSON, y=JSON, inputs=INPUTS)
def test_rendering_any_template_ends_in_text_or_a_located_template_error(
    template: str, x: Any, y: Any, inputs: dict[str, Any]
) -> None:
    passed, error = _validate_then_render(template, WIDE_SCOPE, {"x": x, "y": y, "inputs": inputs})
    if passed and error is not None:
        assert "template syntax error" not in error, (
            f"validate passed a template that does not compile: {error}"
        )


# Expressions whose values have the types their operations need: each is a string when the
# declared inputs have their declared types.
TEXT_LEAVES = st.sampled_from(
    [
        "inputs.name", "inputs.keys", "inputs.obj.a", "inputs['keys']", "inputs.obj['a']",
        "inputs.items | join(',')", "inputs.values | join", "inputs.n | string", "'s'",
        "inputs.items | length | string", "(inputs.values | first) if inputs.values else ''",
        "inputs.obj | tojson", "inputs.items | tojson", "inputs.keys ~ inputs.n",
    ]
)  # fmt: skip
TEXT_WRAPPERS = st.sampled_from(
    [
        "({e}) | upper", "({e}) | lower", "({e}) | trim", "({e}) | replace('a', 'b')", "({e}) ~ 'x'",
        "({e}) | default('d')", "({e}) if inputs.n > 3 else inputs.name", "({e}) | truncate(5, true, '')",
        "[{e}, inputs.name] | join('-')", "({e}) | reverse | join", "({e}) | title", "'%s!' | format({e})",
        "({e}) | center(8)", "({e})[:3]", "({e}) | wordcount | string", "({e}) | indent(2)",
    ]
)  # fmt: skip
# Each wraps a body `b`; inside loops `it` is a string, as the loop's own variable.
TEXT_STATEMENTS = st.sampled_from(
    [
        "{{% for it in inputs.items %}}{b}{{{{ it }}}}{{% endfor %}}",
        "{{% for it in inputs.values %}}{{{{ loop.index }}}}{b}{{% else %}}-{{% endfor %}}",
        "{{% for k, v in inputs.obj | items %}}{{{{ k }}}}={{{{ v }}}}{b}{{% endfor %}}",
        "{{% if inputs.n > 10 %}}{b}{{% elif inputs.keys %}}k{{% else %}}{b}{{% endif %}}",
        "{{% with w = inputs.name %}}{b}{{{{ w }}}}{{% endwith %}}",
        "{{% filter upper %}}{b}{{% endfilter %}}", "{{% set s %}}{b}{{% endset %}}{{{{ s }}}}",
        "{{% macro m(c) %}}{b}{{{{ c }}}}{{% endmacro %}}{{{{ m(inputs.name) }}}}",
        "{{% set ns = namespace(t='') %}}{b}{{% set ns.t = inputs.keys %}}{{{{ ns.t }}}}",
        "{{% for it in inputs.items recursive %}}{b}{{% endfor %}}",
    ]
)  # fmt: skip


@st.composite
def typed_templates(draw: st.DrawFn) -> str:
    expression = draw(TEXT_LEAVES)
    for wrapper in draw(st.lists(TEXT_WRAPPERS, max_size=12)):
        expression = wrapper.format(e=expression)
    body = "{{ " + expression + " }}" + draw(st.sampled_from(["", "text", "{# note #}"]))
    for statement in draw(st.lists(TEXT_STATEMENTS, max_size=5)):
        body = statement.format(b=body)
    return body


# Templates that use only declared inputs, each as its type allows: validate passes them, and
# rendering them with inputs of the declared types succeeds.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=typed_templates(), inputs=INPUTS)
def test_a_template_validate_passes_renders_with_inputs_of_the_declared_types(
    template: str, inputs: dict[str, Any]
) -> None:
    passed, error = _validate_then_render(template, TYPED_SCOPE, {"inputs": inputs})
    assert passed, [str(problem) for problem in check_template(template, TYPED_SCOPE)]
    assert error is None, error
