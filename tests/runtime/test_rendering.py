"""Run-time template rendering: typed single expressions, strict undefined, sandbox and bounds."""

from __future__ import annotations

import signal
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent_platform._runtime.rendering import (
    RenderLimits,
    TemplateLimitExceeded,
    TemplateRenderError,
    render,
    render_value,
)

CONTEXT = {
    "inputs": {"docs": [{"id": 1}, {"id": 2}], "topic": "idempotency", "n": 3},
    "steps": {"chunk": {"output": {"chunks": ["a", "b"], "count": 2}}},
}


def test_single_expression_keeps_its_type() -> None:
    value = {
        "docs": "{{ inputs.docs }}",
        "count": "{{ steps.chunk.output.count + 1 }}",
        "text": "About {{ inputs.topic }} x{{ inputs.n }}",
        "nested": ["{{ inputs.n }}", {"deep": "{{ steps.chunk.output.chunks }}"}],
        "literal": "no templates here",
        "number": 5,
    }
    assert render_value(value, CONTEXT, where="step") == {
        "docs": [{"id": 1}, {"id": 2}],
        "count": 3,
        "text": "About idempotency x3",
        "nested": [3, {"deep": ["a", "b"]}],
        "literal": "no templates here",
        "number": 5,
    }


@pytest.mark.parametrize(
    "source", ["{{ inputs.missing }}", "{{ [inputs.missing] }}", "x {{ inputs.missing }}"]
)
def test_undefined_variables_raise_with_the_location(source: str) -> None:
    with pytest.raises(
        TemplateRenderError, match=r"^spec.steps\[0\].input.q: undefined variable: .*'missing'"
    ):
        render_value({"q": source}, CONTEXT, where="spec.steps[0].input")


@pytest.mark.parametrize(
    "source",
    ["{{ ''.__class__.__mro__ }}", "{{ inputs.topic.__class__ }}", "{{ cycler.__init__.__globals__ }}"],
)
def test_sandbox_blocks_attribute_escapes(source: str) -> None:
    with pytest.raises(TemplateRenderError, match=r"unsafe|sandbox|undefined"):
        render(source, CONTEXT, where="instructions")


def test_loops_that_print_nothing_are_bounded() -> None:
    bomb = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateLimitExceeded, match="iteration limit"):
        render(bomb, CONTEXT, where="instructions")


def test_output_size_is_bounded() -> None:
    with pytest.raises(TemplateLimitExceeded, match="exceeds 1,000 characters"):
        render(
            "{% for i in range(500) %}xxxxx{% endfor %}",
            CONTEXT,
            where="i",
            limits=RenderLimits(max_output_chars=1000),
        )


def test_render_time_is_bounded() -> None:
    limits = RenderLimits(max_seconds=0.0, max_output_chars=10**9, max_iterations=10**9)
    with pytest.raises(TemplateLimitExceeded, match="rendering exceeds"):
        render("{% for i in range(100000) %}x{% endfor %}", CONTEXT, where="i", limits=limits)


def test_runtime_errors_are_typed() -> None:
    with pytest.raises(TemplateRenderError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}", CONTEXT, where="i")


# --- template bombs: every bound is a located TemplateLimitExceeded, found before the damage ----


class Measured:
    peak_bytes: int = 0


@contextmanager
def measured(deadline_s: float = 60.0) -> Iterator[Measured]:
    """The tracemalloc peak of the block; an alarm stops a block that would hang (so a sandbox
    that lets a template run unbounded fails this test instead of hanging the suite)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still rendering after {deadline_s:g}s: no bound stopped the template")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, deadline_s)
    tracemalloc.start()
    result = Measured()
    try:
        yield result
    finally:
        result.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# The clock is out of the picture: every bomb must stop at a counted bound (iterations, sizes,
# nesting), whatever the machine's speed.
NO_TIME_LIMIT = RenderLimits(max_seconds=float("inf"))


BOMBS = {
    "nested loops over strings": "{% for c in 'x'*10**5 %}{% for d in 'x'*10**5 %}{% endfor %}{% endfor %}",
    "the brief's nested loops": "{% for c in 'x'*10**6 %}{% for d in 'x'*10**6 %}{% endfor %}{% endfor %}",
    "string repetition": "{{ 'a'*10**9 }}",
    "list repetition": "{{ [0]*10**9 }}",
    "integer power": "{{ 7 ** 1000000 }}",  # Jinja's ** groups to the left: 7**10**6 is (7**10)**6
    "integer products": "{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "format filter width": "{{ '%999999999d'|format(1) }}",
    "format filter star width": "{{ '%*d'|format(999999999, 1) }}",
    "printf operator": "{{ '%.999999999f' % 1.5 }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "str.format nested width": "{{ '{:>{}}'.format(1, 999999999) }}",
    "center": "{{ 'x'|center(999999999) }}",
    "center method": "{{ 'x'.center(999999999) }}",
    "indent": "{{ ('a\\n' * 1000)|indent(1000000) }}",
    "replace": "{{ ('x' * 100000)|replace('x', 'yyyyyyyyyy') }}",
    "join separator": "{{ range(100000)|join('x' * 1000) }}",
    "str.join": "{{ ('x' * 1000).join(range(100000)|map('string')) }}",
    "doubling concatenation": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling addition": "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "list doubling in place": "{% set l = [1] %}{% for i in range(64) %}{{ l.extend(l) }}{% endfor %}",
    "stringified shared list": "{% set s = 'x' * 400000 %}{% set l = [] %}{% for i in range(1000) %}{{ l.append(s) or '' }}{% endfor %}{{ l }}",
    "buffered block": "{% set s %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ s|length }}",
    "allocation in a loop": "{% set l = [] %}{% for i in range(100000) %}{{ l.append(('x' * 1000)|upper) or '' }}{% endfor %}",
    "slices in a loop": "{% set s = 'x' * 400000 %}{% set l = [] %}{% for i in range(1000) %}{{ l.append(s[1:]) or '' }}{% endfor %}",
    "range": "{% for i in range(10**7) %}{% endfor %}",
    "lipsum": "{{ lipsum(10**6) }}",
    "exponential macro calls": "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
    "recursive loop": "{% for x in [[1]] recursive %}{{ loop([x, x]) }}{% endfor %}",
}


@pytest.mark.parametrize("source", list(BOMBS.values()), ids=list(BOMBS))
def test_template_bombs_stop_at_a_bound_before_the_damage(source: str) -> None:
    with measured() as cost, pytest.raises(TemplateLimitExceeded) as caught:
        render(source, CONTEXT, where="spec.instructions", limits=NO_TIME_LIMIT)
    assert str(caught.value).startswith("spec.instructions: ")
    assert "rendering exceeds" not in str(caught.value)  # a counted bound, not the clock
    assert cost.peak_bytes < 64 * 2**20, cost.peak_bytes


@pytest.mark.parametrize(
    "source",
    [
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% macro f() %}{{ caller() }}{% endmacro %}"
        "{% macro g() %}{% call f() %}{{ g() }}{% endcall %}{% endmacro %}{{ g() }}",
        "{% block b %}{{ self.b() }}{% endblock %}",
    ],
)
def test_recursion_is_a_located_limit_error(source: str) -> None:
    with pytest.raises(TemplateLimitExceeded, match=r"^spec.instructions: .*(recursion|nest)"):
        render(source, CONTEXT, where="spec.instructions")


def test_the_clock_is_checked_inside_loops_that_print_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock that advances 10 ms at each reading: the render must stop at the reading that
    # crosses its 50 ms, from inside the loops (they print nothing and have steps to spare).
    from agent_platform import _template_sandbox as template_sandbox

    readings = 0

    def fake_monotonic() -> float:
        nonlocal readings
        readings += 1
        return readings * 0.01

    monkeypatch.setattr(template_sandbox.time, "monotonic", fake_monotonic)
    limits = RenderLimits(max_seconds=0.05, max_iterations=10**9)
    source = "{% for i in range(100000) %}{% for c in 'x' * 50 %}{% set _ = c ~ i %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateLimitExceeded, match=r"rendering exceeds 0\.05s"):
        render(source, CONTEXT, where="i", limits=limits)
    assert readings <= 10  # stopped within a few iterations of the deadline, not after the loops


def test_a_single_expression_value_is_capped_but_data_passes_through() -> None:
    with pytest.raises(TemplateLimitExceeded, match=r"^spec.returns.x: .*200,000"):
        render_value({"x": "{{ range(50000)|map('string')|join('-') }}"}, CONTEXT, where="spec.returns")
    with pytest.raises(TemplateLimitExceeded):
        render_value("{{ range(100000)|list + range(100000)|list }}", CONTEXT, where="v")
    big = {"inputs": {"doc": "x" * 300_000, "rows": [{"n": i} for i in range(50_000)]}}
    assert render_value("{{ inputs.doc }}", big, where="v") == big["inputs"]["doc"]
    assert render_value("{{ inputs.rows }}", big, where="v") == big["inputs"]["rows"]


def test_templates_within_the_bounds_still_render() -> None:
    source = (
        "{% macro item(d) %}- {{ d.id }}{% endmacro %}"
        "{% for d in inputs.docs %}{{ item(d) }}{{ '\n' }}{% endfor %}"
        "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ '%05.1f' % 3.14159 }} {{ '{:>6}'.format('x') }} "
        "{{ ([1, 2] + [3]) | join(',') }} {{ 'x'|center(9) }} {{ range(3)|list }}"
        "{% for x in [[1, [2]]] recursive %}{{ x if x is number else loop(x) }}{% endfor %}"
    )
    assert render(source, CONTEXT, where="i") == (
        "- 1\n- 2\nababab 1024 003.1      x 1,2,3     x     [0, 1, 2]12"
    )
