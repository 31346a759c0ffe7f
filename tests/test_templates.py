"""Template analysis used by the validator: bound names, Jinja's implicit variables, scopes."""

from __future__ import annotations

import pytest

from agent_platform._validate.templates import OpaqueVar, SchemaVar, Scope, StepsVar, check_template

SCOPE = Scope(
    {
        "inputs": SchemaVar(
            {"type": "object", "properties": {"items": {"type": "array"}, "topic": {"type": "string"}}},
            "the inputs schema",
        ),
        "steps": StepsVar(
            {"a": {"type": "object", "properties": {"n": {"type": "integer"}}}}, frozenset({"c"}), "b"
        ),
        "agent": OpaqueVar(),
    },
    "test",
)


@pytest.mark.parametrize(
    "template",
    [
        "{% for x in inputs.items %}{{ loop.index }}. {{ x }}{% if not loop.last %}, {% endif %}{% endfor %}",
        "{% set n = steps.a.output.n %}{{ n + 1 }}",
        "{% macro show(v) %}[{{ v }}]{{ caller() if caller else '' }}{% endmacro %}{{ show(inputs.topic) }}",
        "{% call show() %}x{% endcall %}{% macro show() %}{{ caller() }}{% endmacro %}",
        "{{ inputs.topic | upper }} {{ agent.name }} {{ range(3) | list }}",
        "{% with t = inputs.topic %}{{ t }}{% endwith %}",
    ],
)
def test_valid_templates_have_no_problems(template: str) -> None:
    assert check_template(template, SCOPE) == []


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ loop.index }}", "unknown variable 'loop'"),
        ("{{ inputs.topc }}", "'inputs.topc' is not declared in the inputs schema (did you mean 'topic'?)"),
        ("{{ steps.c.output }}", "'steps.c' runs after this point"),
        ("{{ steps.b.output }}", "'steps.b' refers to the step itself"),
        ("{{ steps.a.output.m }}", "'steps.a.output.m' is not in the output schema of step 'a'"),
        ("{{ steps.a.result }}", "use 'steps.a.output'"),
        ("{{ topic }}", "(did you mean 'inputs.topic'?)"),
        ("{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'"),
        ("{% if x is nosuchtest %}{% endif %}", "unknown test 'nosuchtest'"),
        ("{% for %}", "template syntax error"),
    ],
)
def test_template_problems(template: str, message: str) -> None:
    problems = check_template(template, SCOPE)
    assert any(message in p.message for p in problems), problems


def test_inputs_must_be_declared_but_open_schemas_are_open() -> None:
    open_schema = {"type": "object"}
    strict = Scope({"inputs": SchemaVar(open_schema, "the inputs schema", declared_only=True)}, "t")
    loose = Scope({"args": SchemaVar(open_schema, "the tool's input_schema")}, "t")
    assert [p.message for p in check_template("{{ inputs.x }}", strict)] == [
        "'inputs.x' is not declared in the inputs schema (it declares no properties)"
    ]
    assert check_template("{{ args.x }}", loose) == []


# An agent's run inputs: `topic` required, `depth` optional with a default, `style` optional
# without one (strict undefined: a run that leaves it out fails where the template uses it).
RUN_INPUTS = Scope(
    {
        "inputs": SchemaVar(
            {
                "type": "object",
                "required": ["topic"],
                "properties": {
                    "topic": {"type": "string"},
                    "depth": {"type": "integer", "default": 2},
                    "style": {"type": "object", "properties": {"tone": {"type": "string"}}},
                },
            },
            "the inputs schema",
            declared_only=True,
        )
    },
    "agent instructions",
)


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.topic }} at depth {{ inputs.depth }}",
        "{{ inputs.style | default('plain') }}",
        "{{ inputs.style.tone | d('neutral') }}",
        "{% if inputs.style is defined %}in a {{ inputs.style.tone }} tone{% endif %}",
        "{% if inputs.style is undefined %}plain{% else %}{{ inputs.style }}{% endif %}",
    ],
)
def test_optional_inputs_that_are_required_defaulted_or_guarded_are_quiet(template: str) -> None:
    assert check_template(template, RUN_INPUTS) == []


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.topic }} in a {{ inputs.style.tone }} tone",
        "{% if inputs.style %}styled{% endif %}",  # strict undefined: the test itself fails
        "{% for k in inputs.style %}{{ k }}{% endfor %}",
    ],
)
def test_an_unguarded_optional_input_without_a_default_is_a_warning(template: str) -> None:
    problems = check_template(template, RUN_INPUTS)
    assert [(p.warning, p.message) for p in problems] == [
        (
            True,
            "'inputs.style' is optional in the inputs schema and has no default: a run that leaves it "
            "out fails to render (give it a default, make it required, or write "
            "`{{ inputs.style | default(...) }}`)",
        )
    ]
    assert problems[0].column == template.index("inputs.style")
    # Only run inputs are checked so: step outputs and other schema variables may be partial.
    assert (
        check_template(template, Scope({"inputs": SchemaVar(RUN_INPUTS.variables["inputs"].schema, "x")}))
        == []
    )  # type: ignore[union-attr]


# Resource bounds that can be seen in the template text itself are errors at validate time, at
# the offending text (the same bounds the run-time sandbox enforces: see agent_platform._template_sandbox).
BOUNDS = Scope({"args": OpaqueVar()}, "test")


@pytest.mark.parametrize(
    ("template", "needle", "message"),
    [
        ("{{ 'a' * 10**9 }}", "*", "1,000,000,000 characters"),
        ("x\n{{ [0] * 10**9 }}", "*", "1,000,000,000 items"),
        ("{{ 7 ** 1000000 }}", "**", "bits"),
        ("{{ '%999999999d' | format(1) }}", "format", "over the limit of 500,000"),
        ("{{ '%.999999999f' % args.x }}", "%", "over the limit of 500,000"),
        ("{{ '{:>999999999}'.format(args.x) }}", "format", "over the limit of 500,000"),
        ("{{ args.x | center(10**9) }}", "center", "1,000,000,000"),
        ("{% for i in range(10**6) %}{% endfor %}", "range", "1,000,000 items"),
        ("{% for c in 'x' * 10**6 %}{% for d in 'x' * 10**6 %}{% endfor %}{% endfor %}", "*", "characters"),
        (
            "{% for a in range(1000) %}\n{% for b in range(1000) %}{% endfor %}{% endfor %}",
            "for",
            "1,000,000",
        ),
        ("{{ lipsum(10**6) }}", "lipsum", "lipsum"),
    ],
)
def test_bombs_visible_in_the_text_are_errors(template: str, needle: str, message: str) -> None:
    problems = check_template(template, BOUNDS)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert not problem.warning and message in problem.message, problem
    line = template.splitlines()[problem.line - 1]
    assert line[problem.column :].startswith(needle), (line, problem.column)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'ab' * 3 }} {{ [0] * 10 }} {{ 2 ** 64 }} {{ '%05d' | format(3) }} {{ '{:>8}'.format(args.x) }}",
        "{% for i in range(100) %}{% for j in range(100) %}{{ i * j }}{% endfor %}{% endfor %}",
        "{{ args.x * 10**9 }} {{ args.s | center(args.n) }}",  # not visible in the text: bounded at run time
    ],
)
def test_templates_within_the_bounds_have_no_problems(template: str) -> None:
    assert check_template(template, BOUNDS) == []
