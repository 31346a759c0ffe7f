"""Render spec templates at run time, in the bounded sandbox the validator parses them with
(`agent_platform._template_sandbox`: see its docstring for every bound).

`render` streams the text and stops past `max_output_chars`, also checking the clock between
chunks; inside the template, every loop iteration and call spends a step of `max_iterations` and
checks the clock, and every value an operation builds is measured (most before they are built).
`render_value` keeps the type of a string that is exactly `{{ expr }}`; a computed value is held
to `max_output_chars` like text, while a variable read as it is (`{{ steps.s.output }}`) is data the
run already holds and passes through whatever its size. A template that exceeds a bound raises
`TemplateLimitExceeded` naming the template and the bound."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError, Undefined, UndefinedError, nodes
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError

from agent_platform._template_sandbox import (
    DEFAULT_LIMITS,
    RenderLimits,
    SandboxLimitExceeded,
    bounded_environment,
    new_context,
    size_of,
)
from agent_platform._validate.templates import single_expression

__all__ = [
    "DEFAULT_LIMITS",
    "RenderLimits",
    "TemplateLimitExceeded",
    "TemplateRenderError",
    "compile_template",
    "render",
    "render_template",
    "render_value",
]


class TemplateRenderError(Exception):
    """A template failed at run time (an undefined variable, a sandbox violation, a type error)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


class TemplateLimitExceeded(TemplateRenderError):
    pass


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """A template compiled in the bounded environment (cached: specs repeat their templates)."""
    return bounded_environment().from_string(source)


@lru_cache(maxsize=4096)
def _single_expression(source: str) -> tuple[Template, bool] | None:
    """For `{{ expr }}` alone: a template whose module exports the expression's *value* (so a list
    stays a list instead of becoming its string form), and whether the expression only reads a
    variable (its value is then data the run holds, not something the template computed)."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or stripped.count("{{") != 1:
        return None
    env = bounded_environment()
    ast = env.parse(stripped)
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output) or len(ast.body[0].nodes) != 1:
        return None
    if isinstance(ast.body[0].nodes[0], nodes.TemplateData):
        return None
    expression = stripped[2:-2].strip()
    template = env.from_string("{% set rendered_value = " + expression + " %}")
    return template, single_expression(stripped) is not None


# Whatever a template does wrong surfaces as one of these (filters raise AttributeError on the
# wrong type, a deep structure RecursionError, ...): all become a located TemplateRenderError.
_TEMPLATE_FAILURES = (Exception,)


def _render_error(where: str, exc: BaseException) -> TemplateRenderError:
    """A template's run-time failure, said the way a spec author can act on."""
    if isinstance(exc, SandboxLimitExceeded):
        return TemplateLimitExceeded(where, str(exc))
    if isinstance(exc, RecursionError):
        return TemplateLimitExceeded(where, "template recursion nests too deep")
    if isinstance(exc, UndefinedError):
        return TemplateRenderError(where, f"undefined variable: {exc.message}")
    if isinstance(exc, SecurityError):
        return TemplateRenderError(where, f"blocked by the template sandbox: {exc}")
    if isinstance(exc, TemplateError):
        return TemplateRenderError(where, str(exc))
    return TemplateRenderError(where, f"{type(exc).__name__}: {exc}")


def render(
    source: str,
    context: Mapping[str, Any],
    *,
    where: str,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> str:
    """Render a template to text within the limits."""
    try:
        template = compile_template(source)
    except _TEMPLATE_FAILURES as exc:
        raise _render_error(where, exc) from None
    return render_template(template, context, where=where, limits=limits)


def render_template(
    template: Template,
    context: Mapping[str, Any],
    *,
    where: str,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> str:
    """Render a template compiled in the bounded environment (or an overlay of it) to text."""
    try:
        render_context = new_context(template, context, limits)
        deadline = render_context.budget.deadline
        size = 0
        parts: list[str] = []
        for chunk in template.root_render_func(render_context):
            size += len(chunk)
            if size > limits.max_output_chars:
                raise TemplateLimitExceeded(
                    where, f"template output exceeds {limits.max_output_chars:,} characters"
                )
            if time.monotonic() > deadline:
                raise TemplateLimitExceeded(where, f"template rendering exceeds {limits.max_seconds:g}s")
            parts.append(chunk)
        return "".join(parts)
    except TemplateRenderError:
        raise
    except _TEMPLATE_FAILURES as exc:
        raise _render_error(where, exc) from None


def render_value(
    value: Any, context: Mapping[str, Any], *, where: str, limits: RenderLimits = DEFAULT_LIMITS
) -> Any:
    """Render templates inside a JSON-like value. A string that is exactly `{{ expr }}` yields the
    expression's value with its type; other strings with template syntax yield text."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            single = _single_expression(value)
        except _TEMPLATE_FAILURES as exc:
            raise _render_error(where, exc) from None
        if single is not None:
            template, reads_a_variable = single
            try:
                module = TemplateModule(template, new_context(template, context, limits))
                result = getattr(module, "rendered_value", None)
                if (
                    not reads_a_variable
                    and size_of(result, limits.max_output_chars) > limits.max_output_chars
                ):
                    raise TemplateLimitExceeded(
                        where,
                        f"the expression's value exceeds {limits.max_output_chars:,} characters and items",
                    )
                return _plain(result)
            except TemplateRenderError:
                raise
            except _TEMPLATE_FAILURES as exc:
                raise _render_error(where, exc) from None
        return render(value, context, where=where, limits=limits)
    if isinstance(value, dict):
        return {k: render_value(v, context, where=f"{where}.{k}", limits=limits) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, where=f"{where}[{i}]", limits=limits) for i, v in enumerate(value)]
    return value


def _plain(value: Any) -> Any:
    """Plain data out of an expression's value; an undefined value raises (it is strict)."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError with the variable's name
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
