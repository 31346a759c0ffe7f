"""Random small templates built from the pieces template bombs are made of (repetition, powers,
padding widths, joins, loops, recursion, accumulation) either render or raise
`TemplateRenderError`, never anything else, and always stop at a counted bound: the time limit is
off, so no template can lean on the clock (a template no count stops would hang the test)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform._runtime.rendering import RenderLimits, TemplateRenderError, render, render_value

CONTEXT = {"inputs": {"topic": "sandbox", "docs": [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": []}]}}
LIMITS = RenderLimits(max_seconds=float("inf"))

# Well-typed pieces (so that most examples get as far as the bounds), and a few ill-typed ones.
small_numbers = st.sampled_from(["0", "1", "2", "3", "7", "-1", "64", "1000", "10**5", "10**6", "10**9"])
string_literals = st.sampled_from(["'x'", "'ab'", "'a\\nb\\tc'", "''", "inputs.topic", "ns.v"])
format_literals = st.sampled_from(
    ["'%d'", "'%999999999d'", "'%*d'", "'%.99999999f'", "'{}'", "'{:>99999999}'"]
)
sequence_literals = st.sampled_from(["[1, 2]", "[]", "range(3)", "range(100000)", "inputs.docs", "ns.l"])


def _numbers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["*", "**", "+", "-", "//"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda n: f"(range({n})|length)"),
    )


numbers = st.recursive(small_numbers, _numbers, max_leaves=4)


def _texts(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, numbers).map(lambda t: f"({t[0]} * {t[1]})"),
        st.tuples(inner, st.sampled_from(["~", "+"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, numbers, st.sampled_from(["center", "indent", "wordwrap"])).map(
            lambda t: f"({t[0]}|{t[2]}({t[1]}))"
        ),
        st.tuples(inner, numbers, st.sampled_from(["center", "ljust", "zfill", "expandtabs"])).map(
            lambda t: f"({t[0]}).{t[2]}({t[1]})"
        ),
        st.tuples(format_literals, numbers, numbers).map(lambda t: f"({t[0]}|format({t[1]}, {t[2]}))"),
        st.tuples(format_literals, numbers).map(lambda t: f"({t[0]} % {t[1]})"),
        st.tuples(format_literals, inner).map(lambda t: f"{t[0]}.format({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}|replace('x', {t[1]}))"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}).replace('a', {t[1]})"),
        st.tuples(sequences_base, inner).map(lambda t: f"({t[0]}|join({t[1]}))"),
        st.tuples(inner, sequences_base).map(lambda t: f"({t[0]}).join({t[1]}|map('string'))"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}|wordwrap(1, wrapstring={t[1]}))"),
        inner.map(lambda e: f"({e})[1:]"),
        inner.map(lambda e: f"({e}|tojson)"),
        numbers.map(lambda n: f"lipsum({n})"),
        numbers.map(lambda n: f"f({n})"),
        sequences_base.map(lambda q: f"({q}|string)"),
    )


sequences_base = st.recursive(
    sequence_literals,
    lambda inner: st.one_of(
        st.tuples(inner, numbers).map(lambda t: f"({t[0]} * {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} + {t[1]})"),
        inner.map(lambda q: f"({q}|map('string')|list)"),
        st.tuples(inner, numbers).map(lambda t: f"({t[0]}|batch({t[1]}, 'x')|list)"),
        string_literals.map(lambda s: f"({s}|list)"),
        inner.map(lambda q: f"range({q}|length)"),
    ),
    max_leaves=3,
)
texts = st.recursive(string_literals, _texts, max_leaves=5)
expressions = st.one_of(
    numbers, texts, sequences_base, st.tuples(texts, numbers).map(lambda t: f"({t[0]} ** {t[1]})")
)


def _statements(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.one_of(sequences_base, texts), inner).map(
            lambda t: f"{{% for x in {t[0]} %}}{t[1]}{{% endfor %}}"
        ),
        st.tuples(expressions, inner).map(lambda t: f"{{% if {t[0]} %}}{t[1]}{{% endif %}}"),
        texts.map(lambda e: f"{{% set ns.v = {e} %}}"),
        st.one_of(texts, sequences_base).map(
            lambda e: f"{{{{ ns.l.append({e}) or ns.l.extend(ns.l) or '' }}}}"
        ),
        st.tuples(inner, inner).map(lambda t: t[0] + t[1]),
        inner.map(lambda body: f"{{% set block %}}{body}{{% endset %}}{{{{ block|length }}}}"),
    )


statements = st.recursive(expressions.map(lambda e: f"{{{{ {e} }}}}"), _statements, max_leaves=5)

PRELUDE = (
    "{% set ns = namespace(v='x', l=[]) %}"
    "{% macro f(n) %}{% if n is number and n < 30 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{{ n }}{% endmacro %}"
)


def _outcome(run: Any) -> str:
    try:
        run()
    except TemplateRenderError as exc:
        assert "rendering exceeds" not in str(exc)  # the clock is off: a count stopped it
        return "refused"
    return "rendered"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements)
def test_random_templates_render_or_fail_as_template_errors(body: str) -> None:
    _outcome(lambda: render(PRELUDE + body, CONTEXT, where="t", limits=LIMITS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_expressions_as_typed_values_too(expression: str) -> None:
    _outcome(
        lambda: render_value(
            "{{ " + expression + " }}", {**CONTEXT, "ns": {"v": 1}}, where="t", limits=LIMITS
        )
    )


def test_every_environment_comes_from_the_one_factory() -> None:
    # An environment that changes what values print (an http url's encoding, a tainted prompt's
    # fence) is an overlay of the one environment: the same sandbox, strictness and lookups.
    from jinja2 import StrictUndefined

    from agent_platform._template_sandbox import BoundedEnvironment, bounded_environment

    plain = bounded_environment()
    shouting = bounded_environment(str.upper)
    assert bounded_environment() is plain and bounded_environment(str.upper) is shouting
    for environment in (plain, shouting):
        assert isinstance(environment, BoundedEnvironment)
        assert environment.undefined is StrictUndefined
        assert environment.filters.keys() == plain.filters.keys()
        assert environment.from_string("{{ d.items }}").render(d={"items": "x"}).lower() == "x"
    assert shouting.from_string("{{ 'a' }}b").render() == "Ab"  # only printed values change
