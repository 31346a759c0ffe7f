"""Render spec templates at run time: the same sandboxed, strict-undefined Jinja2 environment the
validator parses with, plus the bounds the sandbox does not give.

`SandboxedEnvironment` blocks attribute escapes (`__class__`, `mro`, ...) but not resource
exhaustion: `{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}` is
"safe" and never ends. So rendering is bounded three ways: the output is streamed and stopped past
`max_output_chars`; the wall time is checked between chunks; and `range` draws on a per-render
iteration budget, which also stops loops that print nothing. A template that exceeds a bound
raises `TemplateLimitExceeded` naming the template and the bound."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from agent_platform.validate.templates import template_environment


@dataclass(frozen=True, slots=True)
class RenderLimits:
    max_output_chars: int = 200_000
    max_seconds: float = 1.0
    max_iterations: int = 100_000


DEFAULT_LIMITS = RenderLimits()


class TemplateRenderError(Exception):
    """A template failed at run time (an undefined variable, a sandbox violation, a type error)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


class TemplateLimitExceeded(TemplateRenderError):
    pass


class _Budget:
    __slots__ = ("iterations", "where")

    def __init__(self, iterations: int, where: str) -> None:
        self.iterations = iterations
        self.where = where

    def range(self, *args: int) -> range:
        span = range(*args)
        self.iterations -= len(span)
        if self.iterations < 0:
            raise TemplateLimitExceeded(self.where, "template loops exceed the iteration limit")
        return span


@lru_cache(maxsize=4096)
def _compile(source: str) -> Template:
    env: SandboxedEnvironment = template_environment()
    return env.from_string(source)


@lru_cache(maxsize=4096)
def _single_expression(source: str) -> Template | None:
    """For `{{ expr }}` alone, a template whose module exports the expression's *value* (so a list
    stays a list instead of becoming its string form)."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or stripped.count("{{") != 1:
        return None
    env = template_environment()
    ast = env.parse(stripped)
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output) or len(ast.body[0].nodes) != 1:
        return None
    if isinstance(ast.body[0].nodes[0], nodes.TemplateData):
        return None
    expression = stripped[2:-2].strip()
    return env.from_string("{% set rendered_value = " + expression + " %}")


_TEMPLATE_FAILURES = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


def _render_error(where: str, exc: BaseException) -> TemplateRenderError:
    """A template's run-time failure, said the way a spec author can act on."""
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
    budget = _Budget(limits.max_iterations, where)
    variables = {**context, "range": budget.range}
    try:
        template = _compile(source)
        started = time.monotonic()
        size = 0
        parts: list[str] = []
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > limits.max_output_chars:
                raise TemplateLimitExceeded(
                    where, f"template output exceeds {limits.max_output_chars:,} characters"
                )
            if time.monotonic() - started > limits.max_seconds:
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
        single = _single_expression(value)
        if single is not None:
            budget = _Budget(limits.max_iterations, where)
            try:
                module = single.make_module({**context, "range": budget.range})
                return _plain(getattr(module, "rendered_value", None))
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
