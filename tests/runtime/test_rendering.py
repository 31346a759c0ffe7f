"""Run-time template rendering: typed single expressions, strict undefined, sandbox and bounds."""

from __future__ import annotations

import pytest

from agent_platform.runtime.rendering import (
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
