"""The bounded Jinja2 sandbox every spec template is parsed, checked and rendered with.

Jinja's `SandboxedEnvironment` blocks attribute escapes (`__class__`, `mro`, ...) but not resource
exhaustion: `{% for c in 'x'*10**6 %}{% for d in 'x'*10**6 %}...` is "safe" and never ends, and
`{{ 'a'*10**9 }}` allocates a gigabyte before anything could look at it. `BoundedEnvironment`
closes that gap. Every render gets a `RenderBudget` (held by its `BoundedContext`, so renders in
other threads or tasks never share one) and:

- every loop iteration, over any iterable, every call (macros, methods, `caller`, recursive
  `loop(...)`) and every filter call (`map` makes one per item) spends one step of
  `max_iterations` and looks at the clock, so a loop that prints nothing still stops at
  `max_seconds`;
- calls nest at most `max_call_depth` deep, so recursion ends as a limit, not a `RecursionError`;
- every operation that builds a value (`*`, `+`, `**`, `%`, `~`, slices, filters, `str.format`,
  string and list methods, the text of a macro or `{% set %}` block, a container printed with
  `{{ }}`) works out the size of its result *before* building it where the size can be large
  (repetition, padding widths, replacement, joining, integer powers) and checks it against
  `max_value_size`; every built size also counts against `max_built_size` per render, so a loop
  cannot build a large value many times over;
- `range` is limited to 100,000 items (Jinja's own limit) and `lipsum` to a few pages.

Parsing is bounded too, because Jinja's parser and code generator (and Python's compiler after
them) recurse once per level of nesting: a template may nest brackets at most
`MAX_BRACKET_NESTING` deep and its tree (blocks, expressions, filter and attribute chains) at most
`MAX_TEMPLATE_DEPTH` levels, or it is a `TemplateSyntaxError` like any other, from `parse` and
`from_string` alike, so `validate` reports exactly what would fail at run time.

`a.b` reads the key `b` of a mapping (any `Mapping`, not only `dict`) before any attribute: a run
input or step output field named `items`, `keys` or `values` is that field, not the dict method of
that name; the methods stay reachable where no key has their name. `a['b']` (and the attribute
lookups of filters: `map(attribute='b')`, `sort(attribute='b')`) reads only keys of a mapping.

The loop and concatenation hooks are compiled into the template code by `BoundedCodeGenerator`;
the rest are the sandbox's own hooks (`call`, `call_binop`, `wrap_str_format`) and filter wrappers.

Sizes: a string counts its characters; a container being printed counts one per item plus the
sizes of its items (shared references counted each time: that is what printing them produces),
one being built (`[x] * n`, `l.append(x)`) its items only, as those already exist.

`static_limit_problems` applies the same checks to what a template's text shows (literal operands,
literal widths, literal ranges and nested literal loops), so `validate` reports them as errors.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import cache
from string import Formatter
from typing import Any, NoReturn

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError, TemplateRuntimeError, TemplateSyntaxError
from jinja2.filters import make_attrgetter
from jinja2.lexer import (
    TOKEN_LBRACE,
    TOKEN_LBRACKET,
    TOKEN_LPAREN,
    TOKEN_RBRACE,
    TOKEN_RBRACKET,
    TOKEN_RPAREN,
    Token,
    TokenStream,
)
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg, generate_lorem_ipsum, pass_context
from markupsafe import Markup

# --- limits and the per-render budget ---------------------------------------------------------

MAX_RANGE = 100_000  # items one range() may have (Jinja's sandbox limit, kept)
MAX_LIPSUM_WORDS = 10_000  # paragraphs x words per paragraph
# Jinja's parser spends about 14 Python frames per bracket level (of Python's 1,000), its code
# generator a few per tree level; Python refuses generated code nesting over 200 parentheses, 100
# indentation levels or 20 loops (each `{% for %}` is a Python loop).
MAX_BRACKET_NESTING = 32
MAX_TEMPLATE_DEPTH = 64
MAX_LOOP_NESTING = 16
_OPENING = frozenset((TOKEN_LPAREN, TOKEN_LBRACKET, TOKEN_LBRACE))
_CLOSING = frozenset((TOKEN_RPAREN, TOKEN_RBRACKET, TOKEN_RBRACE))


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """The bounds of one render."""

    max_output_chars: int = 200_000  # text a template renders; the size of a computed typed value
    max_seconds: float = 1.0
    max_iterations: int = 100_000  # loop iterations and calls, all loops together
    max_value_size: int = 500_000  # the size of one value an operation builds
    max_built_size: int = 5_000_000  # the sizes of all values one render builds, added up
    max_call_depth: int = 64
    max_integer_bits: int = 65_536


DEFAULT_LIMITS = RenderLimits()


class SandboxLimitExceeded(TemplateRuntimeError):
    """A template went past one of its `RenderLimits` (callers add where the template is)."""


class RenderBudget:
    """What one render may still spend. Held by the render's context."""

    __slots__ = ("built", "deadline", "depth", "limits", "steps_left")

    def __init__(self, limits: RenderLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.steps_left = limits.max_iterations
        self.deadline = time.monotonic() + limits.max_seconds
        self.built = 0
        self.depth = 0

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0 or time.monotonic() > self.deadline:
            self.out_of_steps()

    def out_of_steps(self) -> NoReturn:
        if self.steps_left < 0:
            raise SandboxLimitExceeded(
                f"template loops exceed the iteration limit ({self.limits.max_iterations:,} loop "
                "iterations and calls)"
            )
        self.out_of_time()

    def out_of_time(self) -> NoReturn:
        raise SandboxLimitExceeded(f"template rendering exceeds {self.limits.max_seconds:g}s")

    def check_size(self, size: int, what: str = "value") -> None:
        """Refuse to build one value of `size` when it is over the limit."""
        if size > self.limits.max_value_size:
            unit = {"string": "characters", "text": "characters", "value": "characters and items"}.get(
                what, "items"
            )
            raise SandboxLimitExceeded(
                f"the template would build a {what} of {size:,} {unit}, over the limit of "
                f"{self.limits.max_value_size:,}"
            )

    def build(self, size: int, what: str = "value") -> None:
        """Account for a value of `size` about to be built (or just built, where its size could
        not be known before and is bounded by what it was built from)."""
        self.check_size(size, what)
        self.built += size
        if self.built > self.limits.max_built_size:
            raise SandboxLimitExceeded(
                f"the template builds more than {self.limits.max_built_size:,} characters and items in total"
            )

    def check_integer(self, bits: int) -> None:
        if bits > self.limits.max_integer_bits:
            raise SandboxLimitExceeded(
                f"the template would build an integer of about {bits:,} bits, over the limit of "
                f"{self.limits.max_integer_bits:,}"
            )


def size_of(value: Any, cap: int) -> int:
    """The size of `value` as text and items (see the module docstring), counted up to just past
    `cap`: the walk stops there, so its cost is bounded whatever the value."""
    if type(value) is str:
        return len(value)
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            total += len(item)
            continue
        if kind is int or kind is float or kind is bool or item is None:
            total += 1
            continue
        if kind is dict or (kind is not list and isinstance(item, Mapping)):
            total += 1 + len(item)
            if total > cap:
                return total
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind is list or isinstance(item, tuple | set | frozenset):
            total += 1 + len(item)
            if total > cap:
                return total
            stack.extend(item)
        elif isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, Namespace):  # printed as its attributes
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        else:
            total += 1
        if total > cap:
            return total
    return total


def nesting_of(value: Any, cap: int) -> int:
    """How deeply containers nest in `value` (at most `cap` looked at)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack and seen <= cap:
        item, depth = stack.pop()
        seen += 1
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
            deepest = max(deepest, depth + 1)
    return deepest


def _text_size(budget: RenderBudget, value: Any) -> int:
    """The size of `value` once turned into text; containers are checked against the limit."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int | float | bool | None):
        return 24
    return size_of(value, budget.limits.max_value_size)


# --- checks shared by the run-time hooks and the static checks ----------------------------------


def _repeat_size(sequence: Any, times: int) -> tuple[int, str]:
    return max(times, 0) * len(sequence), "string" if isinstance(sequence, str | bytes) else "list"


def check_binop(budget: RenderBudget, operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` before computing it when its result would be too big."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            budget.check_integer(abs(left).bit_length() + abs(right).bit_length())
        elif isinstance(right, int) and isinstance(left, str | bytes | list | tuple):
            budget.check_size(*_repeat_size(left, right))
        elif isinstance(left, int) and isinstance(right, str | bytes | list | tuple):
            budget.check_size(*_repeat_size(right, left))
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            budget.check_integer(abs(left).bit_length() * right)
    elif operator == "+":
        if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
            budget.check_size(len(left) + len(right), "string" if isinstance(left, str | bytes) else "list")
    elif operator == "%" and isinstance(left, str | bytes):
        budget.check_size(printf_size(budget, left, right), "string")


_PRINTF_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?(?P<kind>.?)",
    re.DOTALL,
)


def printf_size(budget: RenderBudget, template: str | bytes, values: Any) -> int:
    """An upper bound on the length of `template % values`: the format's own length, and for each
    field its width and precision (`*` taken from the values) and the value it prints."""
    if isinstance(template, bytes):
        template = template.decode("latin-1")
    positional = list(values) if isinstance(values, tuple) else [values]
    named = values if isinstance(values, Mapping) else {}
    total = len(template)
    index = 0

    def take() -> Any:
        nonlocal index
        index += 1
        return positional[index - 1] if index <= len(positional) else None

    for spec in _PRINTF_SPEC.finditer(template):
        if spec["kind"] == "%" and not spec["width"] and not spec["precision"]:
            continue
        for part in (spec["width"], spec["precision"]):
            if part == "*":
                given = take()
                total += abs(given) if isinstance(given, int) else 0
            elif part:
                total += int(part)
        printed = take() if spec["key"] is None else named.get(spec["key"])
        total += _text_size(budget, printed)
        if total > budget.limits.max_value_size:
            break
    return total


_FORMAT_NUMBERS = re.compile(r"\d+")


def format_spec_size(spec: str) -> int:
    """An upper bound on what a `str.format` field spec adds (its width and precision)."""
    return sum(int(n) for n in _FORMAT_NUMBERS.findall(spec))


# --- filters ------------------------------------------------------------------------------------

# Filters that turn their input into text: a container is measured before it is printed.
_STRINGIFYING_FILTERS = frozenset(
    {
        "capitalize", "center", "e", "escape", "filesizeformat", "forceescape", "format", "indent",
        "lower", "pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim",
        "truncate", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    }
)  # fmt: skip


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _check_filter(
    budget: RenderBudget, name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """Refuse filters whose output would be too big, before they run: those that print a
    container, and those whose arguments (widths, separators, replacements) multiply their input."""

    def arg(position: int, keyword: str, default: Any) -> Any:
        return args[position] if len(args) > position else kwargs.get(keyword, default)

    if name in _STRINGIFYING_FILTERS and not isinstance(value, str):
        budget.check_size(_text_size(budget, value))
    text = value if isinstance(value, str) else ""
    if name == "center":
        width = arg(0, "width", 80)
        if isinstance(width, int):
            budget.check_size(max(width, len(text)), "string")
    elif name == "indent":
        width = arg(0, "width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        budget.check_size(len(text) + _lines(text) * max(pad, 0), "string")
    elif name == "format":
        budget.check_size(printf_size(budget, text, dict(kwargs) or tuple(args)), "string")
    elif name == "replace":
        old, new, count = arg(0, "old", ""), arg(1, "new", ""), arg(2, "count", None)
        if isinstance(old, str) and isinstance(new, str):
            budget.check_size(replace_size(text, old, new, count), "string")
    elif name == "wordwrap":
        width, wrap = arg(0, "width", 79), arg(3, "wrapstring", None)
        if isinstance(width, int):
            breaks = len(text) // max(width, 1) + _lines(text)
            budget.check_size(len(text) + breaks * (len(wrap) if isinstance(wrap, str) else 1), "string")
    elif name == "urlize":
        extra = sum(len(a) for a in (arg(2, "target", None), arg(3, "rel", None)) if isinstance(a, str))
        # Only words that look like addresses become links, each printed twice plus its markup.
        links = sum(text.count(mark) for mark in ("://", "www.", "@", ".com", ".net", ".org"))
        budget.check_size(3 * len(text) + links * (extra + 64), "string")
    elif name in ("batch", "slice"):
        count = arg(0, "linecount" if name == "batch" else "slices", 1)
        if isinstance(count, int):
            budget.check_size(count, "list")
    elif name == "tojson":
        indent = arg(0, "indent", None)
        step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
        if step > 0:
            size = size_of(value, budget.limits.max_value_size)
            budget.check_size(size)
            budget.check_size(size * (2 + step * nesting_of(value, size)), "string")
    elif name == "sum" and isinstance(arg(1, "start", 0), list | tuple):
        budget.check_size(size_of(value, budget.limits.max_value_size), "list")


def replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    """The length of `text.replace(old, new, count)` (str or bytes), without building it."""
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _built_size(result: Any) -> int:
    """The size of a value an operation just built (containers: their items, not deeper: the
    items already existed)."""
    if isinstance(result, str | bytes | list | tuple | dict | set):
        return len(result)
    return 0


# Values whose text is short (or, for str, is themselves): printing them needs no measuring.
_SCALARS = frozenset({str, int, float, bool, type(None)})

# Filters that hand back (part of) their input rather than build something new: nothing to count.
_SELECTING_FILTERS = frozenset({"attr", "d", "default", "first", "last", "max", "min", "random"})


# Filters with a check of their own in `_check_filter` (the rest only print: checked when what they
# print is a container).
_ARGUMENT_CHECKED_FILTERS = frozenset(
    {"center", "indent", "format", "replace", "wordwrap", "urlize", "batch", "slice", "tojson", "sum"}
)


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, checked before it runs and counted after (see `_check_filter`)."""
    if name == "join":
        return pass_context(_join_filter)
    passes = _PassArg.from_obj(original)
    counted = name not in _SELECTING_FILTERS
    checks_arguments = name in _ARGUMENT_CHECKED_FILTERS
    prints = name in _STRINGIFYING_FILTERS

    def run(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget_of(context)
        # `map` and `select` call a filter once per item: a loop too, so each call is a step.
        budget.steps_left -= 1
        if budget.steps_left < 0 or time.monotonic() > budget.deadline:
            budget.out_of_steps()
        if checks_arguments or (prints and type(value) not in _SCALARS):
            _check_filter(budget, name, value, args, kwargs)
        if passes is None:
            result = original(value, *args, **kwargs)
        elif passes is _PassArg.context:
            result = original(context, value, *args, **kwargs)
        elif passes is _PassArg.eval_context:
            result = original(context.eval_ctx, value, *args, **kwargs)
        else:
            result = original(context.environment, value, *args, **kwargs)
        if counted and result is not value:
            if type(result) is str:
                budget.build(len(result), "string")
            elif isinstance(result, str | bytes | list | tuple | dict | set):
                budget.build(len(result), "list")
        return result

    run.__name__ = f"bounded_{name}"
    run.__doc__ = original.__doc__
    return pass_context(run)


def _join_filter(context: Context, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    """Jinja's `join`, measuring the pieces and separators before joining them."""
    budget = _budget_of(context)
    budget.step()
    items = value if type(value) is list else list(value)
    if attribute is not None:
        getter = make_attrgetter(context.environment, attribute)
        items = [getter(item) for item in items]
    separator = d if type(d) is str else str(d)
    total = len(separator) * (len(items) - 1) if items else 0
    plain = True
    for item in items:
        if type(item) is str:
            total += len(item)
        else:
            plain = False
            total += _text_size(budget, item)
    budget.build(total, "string")
    return separator.join(items if plain else [i if type(i) is str else str(i) for i in items])


# --- methods of strings and containers ----------------------------------------------------------

_GROWING_CONTAINER_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault", "add"})


def _check_method(budget: RenderBudget, owner: Any, name: str, args: Sequence[Any]) -> None:
    """Refuse string methods whose result would be too big, and containers that would grow past
    the limit, before the method runs."""
    if isinstance(owner, str | bytes):
        if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
            budget.check_size(max(args[0], len(owner)), "string")
        elif name == "expandtabs":
            tab = args[0] if args and isinstance(args[0], int) else 8
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            budget.check_size(len(owner) + tabs * max(tab, 0), "string")
        elif name == "replace" and len(args) >= 2 and type(args[0]) is type(args[1]) is type(owner):
            count = args[2] if len(args) > 2 else -1
            budget.check_size(replace_size(owner, args[0], args[1], count), "string")
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            budget.check_size(len(owner) * max(longest, 1), "string")
    elif name in _GROWING_CONTAINER_METHODS and isinstance(owner, list | dict | set):
        added = args[0] if args else ()
        grows = len(added) if name in ("extend", "update") and isinstance(added, Sized) else 1
        budget.check_size(len(owner) + grows, "list")
        budget.build(grows, "list")


def _join_method(budget: RenderBudget, separator: str | bytes, pieces: Iterable[Any]) -> Any:
    """`str.join`, measured before joining."""
    items = list(pieces)
    budget.build(
        sum(len(i) if isinstance(i, str | bytes) else 0 for i in items)
        + len(separator) * max(len(items) - 1, 0),
        "string",
    )
    return separator.join(items)


# --- str.format ---------------------------------------------------------------------------------


class _FieldBound(Formatter):
    """Measures each field before formatting it, and the fields so far together."""

    budget: RenderBudget
    so_far: int = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:  # !r, !s, !a print the value before format_field sees it
            self.budget.check_size(self.so_far + _text_size(self.budget, value), "string")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.so_far += _text_size(self.budget, value) + format_spec_size(format_spec)
        self.budget.check_size(self.so_far, "string")
        return super().format_field(value, format_spec)


class _BoundedFormatter(_FieldBound, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_FieldBound, SandboxedEscapeFormatter):
    pass


class BoundedStrFormat:
    """`str.format` / `str.format_map` of one string, with every field measured before it is
    formatted (the sandbox hands this out where a template reads `'...'.format`)."""

    __slots__ = ("environment", "is_format_map", "text")

    unsafe_callable = False
    alters_data = False

    def __init__(self, environment: SandboxedEnvironment, text: str, is_format_map: bool) -> None:
        self.environment = environment
        self.text = text
        self.is_format_map = is_format_map

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return self.within(RenderBudget(), args, kwargs)

    def within(self, budget: RenderBudget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        formatter: _FieldBound
        if isinstance(self.text, Markup):
            formatter = _BoundedEscapeFormatter(self.environment, escape=self.text.escape)
        else:
            formatter = _BoundedFormatter(self.environment)
        formatter.budget = budget
        formatter.so_far = len(self.text)
        if self.is_format_map:
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one positional argument")
            kwargs, args = args[0], ()
        result = type(self.text)(formatter.vformat(self.text, args, kwargs))
        budget.build(len(result), "string")
        return result


# --- globals --------------------------------------------------------------------------------------


def bounded_range(*args: int) -> range:
    span = range(*args)
    if len(span) > MAX_RANGE:
        raise SandboxLimitExceeded(f"range() of {len(span):,} items is over the limit of {MAX_RANGE:,}")
    return span


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n * max > MAX_LIPSUM_WORDS:
        raise SandboxLimitExceeded(
            f"lipsum() of {n:,} x {max:,} words is over the limit of {MAX_LIPSUM_WORDS:,}"
        )
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# --- the compiled code's hooks ------------------------------------------------------------------


_LOOP_HOOK = "iterate_within_budget"


def _is_loop_hook(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and (node.node.name == _LOOP_HOOK)
    )


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with the budget compiled in: loop iterables wrapped, `~` and slices
    measured, block and macro text joined under the limits."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Every loop iterates `environment.iterate_within_budget(context, <iterable>)`; Jinja allows
        # no new node types, so the wrapper is a call of an environment attribute, which template
        # syntax cannot write.
        for loop in list(node.find_all(nodes.For)):
            if not _is_loop_hook(loop.iter):
                hook = nodes.EnvironmentAttribute(_LOOP_HOOK, lineno=loop.iter.lineno)
                loop.iter = nodes.Call(hook, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if not _is_loop_hook(node):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        self.write(f"environment.{_LOOP_HOOK}(context, ")
        self.visit(node.args[0], frame)
        self.write(")")

    def write_commons(self) -> None:
        super().write_commons()
        # Macro and `{% set %}` block text is joined by `concat`: measured there.
        self.writeline("concat = environment.joiner_within_budget(context)")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_within_budget(context, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.slice_within_budget(context, ")
        self.visit(node.node, frame)
        self.write(", slice(")
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
            self.write(", ")
        self.write("))")


class BoundedContext(Context):
    """A render's context, carrying its budget (derived contexts share it)."""

    def __init__(
        self,
        environment: Any,
        parent: dict[str, Any],
        name: str | None,
        blocks: dict[str, Any],
        globals: Any = None,
        budget: RenderBudget | None = None,
    ) -> None:
        super().__init__(environment, parent, name, blocks, globals=globals)
        self.budget = budget if budget is not None else RenderBudget()

    def derived(self, locals: dict[str, Any] | None = None) -> Context:
        context = super().derived(locals)
        context.budget = self.budget  # type: ignore[attr-defined]
        return context


def _budget_of(context: Context) -> RenderBudget:
    """The render's budget (every context of a bounded environment carries one)."""
    budget: RenderBudget = context.budget  # type: ignore[attr-defined]
    return budget


@pass_context
def finalize_output(context: Context, value: Any) -> Any:
    """What `{{ value }}` prints: a container is measured before it becomes text."""
    if type(value) is str or value is None or isinstance(value, int | float):
        return value
    if isinstance(value, Mapping | list | tuple | set | frozenset | Namespace):
        budget = _budget_of(context)
        budget.build(size_of(value, budget.limits.max_value_size))
    return value


def _concat_output(chunks: Iterable[str]) -> str:
    """`Template.render`'s join, for callers that render without `agent_platform._runtime.rendering`:
    the default output limit applies."""
    parts: list[str] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > DEFAULT_LIMITS.max_output_chars:
            raise SandboxLimitExceeded(
                f"template output exceeds {DEFAULT_LIMITS.max_output_chars:,} characters"
            )
        parts.append(chunk)
    return "".join(parts)


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with resource bounds (see the module docstring). Strict about undefined names,
    no autoescaping, trailing newlines kept."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = BoundedCodeGenerator
    context_class = BoundedContext
    concat = staticmethod(_concat_output)

    def __init__(self, finalize: Callable[..., Any] = finalize_output) -> None:
        # optimized=False: Jinja's optimizer evaluates constant parts of a template while compiling
        # it, and some of that raises (`{{ 1.a ~ 's' }}`: an undefined made text), so a template
        # that parses would fail to compile; everything is evaluated when rendered instead.
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=finalize,
            optimized=False,
        )
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = bounded_lipsum

    # parsing, bounded

    def _tokenize(
        self, source: str, name: str | None, filename: str | None = None, state: str | None = None
    ) -> TokenStream:
        stream = super()._tokenize(source, name, filename, state)
        return TokenStream(_within_bracket_nesting(stream, name, filename), name, filename)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            tree = super()._parse(source, name, filename)
        except RecursionError:  # deep block nesting the bracket check does not see
            raise _too_deep(1, name, filename) from None
        _check_tree_depth(tree, name, filename)
        return tree

    # attribute access: the keys of spec data first

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:  # the common case, without the ABC check below
            if attribute in obj:
                return obj[attribute]
        elif isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        # A subscript of spec data names a key, never a method: `inputs['keys']` without such a
        # key is undefined (Jinja would fall back to `dict.keys`), as `make_attrgetter` lookups
        # (`map(attribute='items')`, `sort(attribute=...)`) are.
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)

    # hooks the compiled code calls

    def iterate_within_budget(self, context: Context, iterable: Any) -> Iterator[Any]:
        budget = _budget_of(context)
        for item in iterable:
            budget.steps_left -= 1
            if budget.steps_left < 0 or time.monotonic() > budget.deadline:
                budget.out_of_steps()
            yield item

    def joiner_within_budget(self, context: Context) -> Callable[[Iterable[str]], str]:
        budget = _budget_of(context)

        def join(parts: Iterable[str]) -> str:
            pieces = parts if isinstance(parts, list) else list(parts)
            budget.build(sum(map(len, pieces)), "text")
            return "".join(pieces)

        return join

    def concat_within_budget(self, context: Context, parts: tuple[Any, ...]) -> str:
        budget = _budget_of(context)
        budget.build(sum(_text_size(budget, part) for part in parts), "string")
        return "".join([part if type(part) is str else str(part) for part in parts])

    def slice_within_budget(self, context: Context, value: Any, span: slice) -> Any:
        result = value[span]
        _budget_of(context).build(_built_size(result), "string" if isinstance(result, str) else "list")
        return result

    # the sandbox's hooks

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget_of(context)
        check_binop(budget, operator, left, right)
        result = self.binop_table[operator](left, right)
        if isinstance(result, str | bytes | list | tuple):
            budget.build(len(result), "string" if isinstance(result, str | bytes) else "list")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        return BoundedStrFormat(self, owner, value.__name__ == "format_map")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget_of(__context)
        budget.step()
        if type(__obj) is BoundedStrFormat:
            return __obj.within(budget, args, kwargs)
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        builds = False
        if type(__obj) is types.BuiltinMethodType:
            owner = __obj.__self__
            builds = isinstance(owner, str | bytes) or __obj.__name__ == "copy"
            if isinstance(owner, str | bytes) and __obj.__name__ == "join" and len(args) == 1 and not kwargs:
                return _join_method(budget, owner, args[0])
            _check_method(budget, owner, __obj.__name__, args)
        elif isinstance(__obj, LoopContext) and args:
            # `loop(children)` in a recursive loop iterates the children: each one is a step too.
            args = (__self.iterate_within_budget(__context, args[0]), *args[1:])
        budget.depth += 1
        try:
            if budget.depth > budget.limits.max_call_depth:
                raise SandboxLimitExceeded(
                    f"template calls nest deeper than {budget.limits.max_call_depth} (runaway recursion?)"
                )
            result = __context.call(__obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        # String methods and copies build something new; other calls hand back what exists
        # (dict.get, list.pop) or text already measured where it was joined (macros, caller()).
        if builds or __obj is dict:
            budget.build(_built_size(result), "string" if isinstance(result, str) else "list")
        return result


def _too_deep(line: int, name: str | None, filename: str | None) -> TemplateSyntaxError:
    return TemplateSyntaxError(
        f"template nests too deeply (at most {MAX_BRACKET_NESTING} levels of brackets and "
        f"{MAX_TEMPLATE_DEPTH} levels of blocks, expressions, filters and attributes)",
        line,
        name,
        filename,
    )


def _loops_too_deep(line: int, name: str | None, filename: str | None) -> TemplateSyntaxError:
    return TemplateSyntaxError(f"loops nest more than {MAX_LOOP_NESTING} deep", line, name, filename)


def _within_bracket_nesting(
    tokens: Iterable[Token], name: str | None, filename: str | None
) -> Iterator[Token]:
    """The parser's tokens, refusing brackets nested past MAX_BRACKET_NESTING: checked as the
    recursive parser pulls each token, so it stops before the nesting can exhaust its stack.
    Unbalanced brackets are left to the parser to report."""
    depth = 0
    for token in tokens:
        kind = token.type
        if kind in _OPENING:
            depth += 1
            if depth > MAX_BRACKET_NESTING:
                raise _too_deep(token.lineno, name, filename)
        elif kind in _CLOSING and depth:
            depth -= 1
        yield token


def _check_tree_depth(tree: nodes.Template, name: str | None, filename: str | None) -> None:
    """Refuse a tree deeper than MAX_TEMPLATE_DEPTH, or with loops nested past MAX_LOOP_NESTING
    (measured without recursion): every later walk of it (code generation, the validator's checks)
    recurses per level."""
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 1, 0)]
    while stack:
        node, depth, loops = stack.pop()
        if depth > MAX_TEMPLATE_DEPTH:
            raise _too_deep(getattr(node, "lineno", 1) or 1, name, filename)
        if isinstance(node, nodes.For):
            loops += 1
            if loops > MAX_LOOP_NESTING:
                raise _loops_too_deep(node.lineno, name, filename)
        stack.extend((child, depth + 1, loops) for child in node.iter_child_nodes())


@cache
def bounded_environment(print_as: Callable[[Any], Any] | None = None) -> BoundedEnvironment:
    """The one factory of the environments spec templates are parsed, checked and rendered with
    (validate, the runtime's renders, http tools, idempotency keys, prompts): sandboxed, strict
    about undefined names, keys of a mapping before its attributes, every bound of this module.

    `print_as` changes only what `{{ value }}` prints, after the sandbox measured the value (an
    http tool's url encodes it, a tainted prompt fences it): the result is an overlay of the one
    environment, sharing every other setting. One environment per `print_as`, made once.

    >>> env = bounded_environment()
    >>> env.from_string("{{ inputs.items }}").render(inputs={"items": 3})
    '3'
    >>> env.from_string("{{ missing }}").render()
    Traceback (most recent call last):
    ...
    jinja2.exceptions.UndefinedError: 'missing' is undefined
    >>> shouting = bounded_environment(str.upper)
    >>> shouting.from_string("say {{ word }}").render(word="hi"), shouting.undefined is env.undefined
    ('say HI', True)
    """
    if print_as is None:
        return BoundedEnvironment()

    @pass_context
    def finalize(context: Context, value: Any) -> Any:
        return print_as(finalize_output(context, value))

    overlay = bounded_environment().overlay(finalize=finalize)
    assert isinstance(overlay, BoundedEnvironment)
    return overlay


def new_context(template: Template, variables: Mapping[str, Any], limits: RenderLimits) -> BoundedContext:
    """A context to render `template` with, on a budget of `limits` (what `Template.new_context`
    makes, with the budget given rather than replaced)."""
    return BoundedContext(
        template.environment,
        dict(template.globals, **variables),
        template.name,
        template.blocks,
        globals=template.globals,
        budget=RenderBudget(limits),
    )


# --- the same bounds, read from a template's text ----------------------------------------------

_UNKNOWN: Any = object()


@dataclass(frozen=True, slots=True)
class StaticLimitProblem:
    line: int
    message: str
    needle: str  # the text to point at on that line


def _known(value: Any, stand_in: Any = None) -> Any:
    return stand_in if value is _UNKNOWN else value


class _StaticChecker:
    """Evaluates what a template's text fixes (literals, and operations on them) and applies the
    run-time checks to it; an operand only known at run time stands in as None or "" where the
    check is about the other operand (a width, a format string). Nested loops over literal ranges,
    strings and lists multiply."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.problems: list[StaticLimitProblem] = []

    def budget(self) -> RenderBudget:
        budget = RenderBudget(self.limits)
        budget.deadline = float("inf")
        return budget

    def check(self, node: nodes.Node, needle: str, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except SandboxLimitExceeded as exc:
            self.problems.append(StaticLimitProblem(node.lineno, str(exc), needle))
        except Exception:  # fails at run time the same way; not a resource problem
            pass
        return _UNKNOWN

    def value(self, node: nodes.Node) -> Any:
        """The value `node` always has, or `_UNKNOWN`; records every limit it breaks."""
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [self.value(item) for item in node.items]
            if any(item is _UNKNOWN for item in items):
                return _UNKNOWN
            return items if isinstance(node, nodes.List) else tuple(items)
        if isinstance(node, nodes.Neg | nodes.Pos):
            operand = self.value(node.node)
            if isinstance(operand, int | float) and not isinstance(operand, bool):
                return -operand if isinstance(node, nodes.Neg) else operand
            return _UNKNOWN
        if isinstance(node, nodes.BinExpr):
            return self.binop(node)
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.Call):
            return self.call(node)
        for child in node.iter_child_nodes():
            self.value(child)
        return _UNKNOWN

    def binop(self, node: nodes.BinExpr) -> Any:
        left, right = self.value(node.left), self.value(node.right)
        operator = node.operator
        if operator == "%" and isinstance(left, str) and right is _UNKNOWN:
            return self.check(node, "%", lambda: check_binop(self.budget(), "%", left, None))
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN

        def run() -> Any:
            if operator in BoundedEnvironment.intercepted_binops:
                check_binop(self.budget(), operator, left, right)
            return BoundedEnvironment.default_binop_table[operator](left, right)

        return self.check(node, operator, run)

    def arguments(self, node: nodes.Filter | nodes.Call) -> tuple[list[Any], dict[str, Any]]:
        args = [self.value(a) for a in node.args]
        kwargs = {str(k.key): self.value(k.value) for k in node.kwargs}
        for dynamic in (node.dyn_args, node.dyn_kwargs):
            if dynamic is not None:
                self.value(dynamic)
        return args, kwargs

    def filter(self, node: nodes.Filter) -> Any:
        operand = self.value(node.node) if node.node is not None else _UNKNOWN
        args, kwargs = self.arguments(node)
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            return _UNKNOWN
        known_args = [_known(a) for a in args]
        known_kwargs = {k: _known(v) for k, v in kwargs.items()}
        return self.check(
            node,
            node.name,
            lambda: _check_filter(self.budget(), node.name, _known(operand, ""), known_args, known_kwargs),
        )

    def call(self, node: nodes.Call) -> Any:
        target = node.node
        if isinstance(target, nodes.Getattr):
            owner = self.value(target.node)
        else:
            self.value(target)
            owner = _UNKNOWN
        args, kwargs = self.arguments(node)
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            return _UNKNOWN
        if isinstance(target, nodes.Name) and target.name in ("range", "lipsum"):
            if any(a is _UNKNOWN for a in (*args, *kwargs.values())):
                return _UNKNOWN
            function = bounded_range if target.name == "range" else bounded_lipsum
            result = self.check(node, target.name, lambda: function(*args, **kwargs))
            return result if target.name == "range" else _UNKNOWN
        if not isinstance(target, nodes.Getattr) or not isinstance(owner, str):
            return _UNKNOWN
        if target.attr in ("format", "format_map"):
            widths = sum(format_spec_size(spec or "") for _, _, spec, _ in Formatter().parse(owner))
            self.check(node, target.attr, lambda: self.budget().check_size(len(owner) + widths, "string"))
        else:
            known = [_known(a) for a in args]
            self.check(node, target.attr, lambda: _check_method(self.budget(), owner, target.attr, known))
        return _UNKNOWN

    def loop(self, node: nodes.For, enclosing: int) -> None:
        iterable = self.value(node.iter)
        length = len(iterable) if isinstance(iterable, range | str | list | tuple) else None
        runs = enclosing * length if length is not None else enclosing
        if length is not None and runs > self.limits.max_iterations:
            self.problems.append(
                StaticLimitProblem(
                    node.lineno,
                    f"nested loops run {runs:,} times, over the limit of {self.limits.max_iterations:,} "
                    "loop iterations per render",
                    "for",
                )
            )
            runs = 1  # reported once, at the innermost loop that crosses the limit
        for part in (node.target, node.test):
            if part is not None:
                self.value(part)
        for child in node.body:
            self.statement(child, runs)
        for child in node.else_:
            self.statement(child, enclosing)

    def statement(self, node: nodes.Node, enclosing: int) -> None:
        if isinstance(node, nodes.For):
            self.loop(node, enclosing)
            return
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Stmt | nodes.Template):
                self.statement(child, enclosing)
            else:
                self.value(child)


def static_limit_problems(
    tree: nodes.Template, limits: RenderLimits = DEFAULT_LIMITS
) -> list[StaticLimitProblem]:
    """The resource limits a template breaks whatever its variables hold (each once)."""
    checker = _StaticChecker(limits)
    checker.statement(tree, 1)
    unique: dict[tuple[int, str], StaticLimitProblem] = {}
    for problem in checker.problems:
        unique.setdefault((problem.line, problem.message), problem)
    return list(unique.values())
