"""`validate` only parses templates; the runtime compiles them. A fuzzer over generated templates
(every statement and expression form, nested up to past every bound) checks that the two agree:
a template Jinja's compiler refuses (or Python refuses the code Jinja generates for it) is a
validate error, and checking one never raises."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform.template_sandbox import bounded_environment
from agent_platform.validate.templates import OpaqueVar, Scope, check_template

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
