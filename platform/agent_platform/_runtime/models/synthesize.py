"""Synthesise a deterministic, schema-valid instance of any pydantic model.

Used by the scripted provider when its script has no answer left (`on_script_exhausted:
synthesize`) and by tests that need "some valid answer". The value is built from the model's JSON
Schema (validation mode), so constraints declared either way (pydantic `Field(ge=...)` or a spec's
JSON Schema turned into a model) are respected:

* objects: the required properties only (optional ones keep their defaults), then more properties
  while `minProperties` asks for them; nested models and `$ref`s recurse;
* strings: a short fixed word (`"text"`) fitted to `minLength`/`maxLength`; well-known `format`s
  get a canonical example (`date-time`, `email`, `uuid`, ...); a `pattern` gets a minimal string
  generated from the regex itself (`^test_` gives `"test_"`, `^[A-Z]{2}-\\d+$` gives `"AA-0"`),
  checked with `re.search`, with a few fallback candidates;
* numbers and integers: the lower bound when there is one (exclusive bounds stepped inside, the
  midpoint for an exclusive float range), else 0 when allowed, else the upper bound; `multipleOf`
  is honoured;
* booleans `False`; `enum` the first value; `const` its value; `null` None;
* arrays: `minItems` items (distinct ones when `uniqueItems`), `prefixItems` in order;
* unions (`anyOf`/`oneOf`, discriminated or not): the first branch whose value validates against
  that branch's schema. `prefer(branch_schema) -> bool` moves preferred branches first -- e.g.
  `prefer=prefers_final_answer` makes an agent's decision union synthesise its `final_answer`
  branch instead of a tool call (which would keep an agent loop running until max_iterations).

The result is validated by the model itself (JSON mode, strict first, as the providers validate a
real answer) before it is returned; when no valid instance can be built, `SynthesisError` says where
and why. Deterministic: the same model always gives the same instance.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

BranchPredicate = Callable[[Mapping[str, Any]], bool]

_MAX_DEPTH = 48
_WORD = "text"

# Canonical examples for JSON Schema / pydantic string formats.
_FORMATS: dict[str, str] = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "duration": "PT1S",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "url": "https://example.com/",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "ipvanyaddress": "192.0.2.1",
    "ipvanyinterface": "192.0.2.1/32",
    "ipvanynetwork": "192.0.2.0/24",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uuid1": "00000000-0000-1000-8000-000000000000",
    "uuid3": "00000000-0000-3000-8000-000000000000",
    "uuid4": "00000000-0000-4000-8000-000000000000",
    "uuid5": "00000000-0000-5000-8000-000000000000",
    "json-string": "null",
    "regex": "x",
}


class SynthesisError(ValueError):
    """No schema-valid instance could be built; the message names the model, the path and why."""


def prefers_final_answer(branch: Mapping[str, Any]) -> bool:
    """A `prefer` predicate picking the `final_answer` branch of an agent decision union: a branch
    titled like `FinalAnswer`, or with a property fixed to `"final_answer"` (a `Literal` tag)."""
    title = str(branch.get("title", "")).replace("_", "").replace("-", "").lower()
    if "finalanswer" in title:
        return True
    props = branch.get("properties")
    if isinstance(props, Mapping):
        for prop in props.values():
            if isinstance(prop, Mapping) and (
                prop.get("const") == "final_answer" or prop.get("enum") == ["final_answer"]
            ):
                return True
    return False


def synthesize(model: type[T], *, prefer: BranchPredicate | None = None) -> T:
    """A deterministic instance of `model` that validates; `SynthesisError` when impossible."""
    try:
        schema = model.model_json_schema(mode="validation")
    except Exception as exc:  # a field type with no JSON Schema (e.g. a callable)
        raise SynthesisError(f"cannot synthesise {model.__name__}: no JSON Schema ({exc})") from exc
    builder = _Builder(schema, prefer, model.__name__)
    value = builder.build(schema, (), 0, 0)
    text = json.dumps(value)
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError:
        pass
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise SynthesisError(
            f"cannot synthesise {model.__name__}: the value built from its schema does not validate "
            f"(the model has constraints its JSON Schema does not show?): {_first_error(exc)}"
        ) from exc


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg')}{more}"


class _Builder:
    def __init__(self, root: Mapping[str, Any], prefer: BranchPredicate | None, name: str) -> None:
        self.root = root
        self.defs: Mapping[str, Any] = root.get("$defs") or root.get("definitions") or {}
        self.prefer = prefer
        self.name = name

    def fail(self, path: tuple[str, ...], why: str) -> SynthesisError:
        where = ".".join(path) or "(root)"
        return SynthesisError(f"cannot synthesise {self.name} at {where}: {why}")

    def resolve(self, schema: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
        """Follow `$ref` (local refs only) and merge single-entry `allOf` wrappers."""
        seen = 0
        while True:
            ref = schema.get("$ref")
            if isinstance(ref, str):
                target = self._lookup(ref, path)
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = {**target, **rest}
            elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
                inner = schema["allOf"][0]
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                schema = {**inner, **rest} if isinstance(inner, Mapping) else rest
            else:
                return schema
            seen += 1
            if seen > _MAX_DEPTH:
                raise self.fail(path, "reference cycle")

    def _lookup(self, ref: str, path: tuple[str, ...]) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise self.fail(path, f"remote reference {ref!r} is not supported")
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise self.fail(path, f"unresolvable reference {ref!r}")
            node = node[part]
        if not isinstance(node, Mapping):
            raise self.fail(path, f"reference {ref!r} is not a schema")
        return node

    # --- values ---------------------------------------------------------------------------------

    def build(self, schema: Any, path: tuple[str, ...], depth: int, variant: int) -> Any:
        if depth > _MAX_DEPTH:
            raise self.fail(path, "the schema nests too deeply (a required recursive field?)")
        if schema is True or schema is None:
            return None
        if schema is False:
            raise self.fail(path, "the schema accepts nothing (false)")
        if not isinstance(schema, Mapping):
            raise self.fail(path, f"not a schema: {schema!r}")
        schema = self.resolve(schema, path)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            values = schema["enum"]
            return values[variant % len(values)]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.union(schema, schema[key], path, depth, variant)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part, path) if isinstance(part, Mapping) else {})
            merged.update({k: v for k, v in schema.items() if k != "allOf"})
            return self.build(merged, path, depth + 1, variant)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, path, depth, variant)
        if kind == "array":
            return self.array(schema, path, depth)
        if kind == "string":
            return self.string(schema, path, variant)
        if kind in ("integer", "number"):
            return self.number(schema, path, kind == "integer", variant)
        if kind == "boolean":
            return variant % 2 == 1
        return None  # "null", or an unconstrained schema (Any)

    @staticmethod
    def kind(schema: Mapping[str, Any]) -> str | None:
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            return str(non_null[0]) if non_null else "null"
        if isinstance(kind, str):
            return kind
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
            return "string"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return None

    def union(
        self,
        schema: Mapping[str, Any],
        branches: list[Any],
        path: tuple[str, ...],
        depth: int,
        variant: int,
    ) -> Any:
        siblings = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "discriminator")}
        resolved = [{**self.resolve(b, path), **siblings} if isinstance(b, Mapping) else b for b in branches]
        order = list(range(len(resolved)))
        if self.prefer is not None:
            preferred = [i for i in order if isinstance(resolved[i], Mapping) and self.prefer(resolved[i])]
            order = preferred + [i for i in order if i not in preferred]
        problems: list[str] = []
        for index in order:
            branch = resolved[index]
            try:
                value = self.build(branch, path, depth + 1, variant)
            except SynthesisError as exc:
                problems.append(str(exc))
                continue
            if self.valid(branch, value):
                return value
            problems.append(f"branch {index} built {value!r}, which does not validate")
        raise self.fail(path, "no branch of the union could be built: " + "; ".join(problems))

    def valid(self, schema: Any, value: Any) -> bool:
        """Whether `value` satisfies `schema` (with the root's definitions) per JSON Schema."""
        import jsonschema_rs

        if not isinstance(schema, Mapping):
            return True
        document = {**schema, "$defs": self.defs} if self.defs else dict(schema)
        try:
            return bool(jsonschema_rs.validator_for(document).is_valid(value))
        except Exception:  # a keyword jsonschema_rs rejects: let the model's validation decide
            return True

    def object(
        self, schema: Mapping[str, Any], path: tuple[str, ...], depth: int, variant: int
    ) -> dict[str, Any]:
        props: Mapping[str, Any] = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        result: dict[str, Any] = {}
        for name in required:
            sub = props.get(name)
            if sub is None:
                extra = schema.get("additionalProperties")
                sub = extra if isinstance(extra, Mapping) else {}
            result[name] = self.build(sub, (*path, name), depth + 1, variant)
        wanted = int(schema.get("minProperties") or 0)
        for name, sub in props.items():
            if len(result) >= wanted:
                break
            if name not in result:
                result[name] = self.build(sub, (*path, name), depth + 1, variant)
        extra = schema.get("additionalProperties")
        index = 0
        while len(result) < wanted:
            if extra is False:
                raise self.fail(path, f"minProperties {wanted} exceeds the properties allowed")
            key = f"key{index}"
            index += 1
            if key not in result:
                sub = extra if isinstance(extra, Mapping) else {}
                result[key] = self.build(sub, (*path, key), depth + 1, variant)
        return result

    def array(self, schema: Mapping[str, Any], path: tuple[str, ...], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items")
        count = max(int(schema.get("minItems") or 0), 0)
        result: list[Any] = [
            self.build(sub, (*path, str(i)), depth + 1, 0) for i, sub in enumerate(prefix or [])
        ]
        unique = bool(schema.get("uniqueItems"))
        variant = 0
        attempts = 0
        while len(result) < count:
            if items is False:
                raise self.fail(path, f"minItems {count} but no items beyond the prefix are allowed")
            value = self.build(
                items if items is not None else {}, (*path, str(len(result))), depth + 1, variant
            )
            variant += 1
            attempts += 1
            if unique and value in result:
                if attempts > count + 64:
                    raise self.fail(path, f"cannot build {count} distinct items")
                continue
            result.append(value)
        return result

    def string(self, schema: Mapping[str, Any], path: tuple[str, ...], variant: int) -> str:
        min_len = int(schema.get("minLength") or 0)
        max_len_raw = schema.get("maxLength")
        max_len = int(max_len_raw) if isinstance(max_len_raw, int) else None
        pattern = schema.get("pattern") if isinstance(schema.get("pattern"), str) else None
        fmt = schema.get("format") if isinstance(schema.get("format"), str) else None
        compiled: re.Pattern[str] | None = None
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error:
                compiled = None  # a dialect Python lacks: the final validation decides

        def fits(candidate: str) -> bool:
            if len(candidate) < min_len or (max_len is not None and len(candidate) > max_len):
                return False
            return compiled is None or compiled.search(candidate) is not None

        candidates: list[str] = []
        if fmt in _FORMATS:
            candidates.append(_vary_format(_FORMATS[fmt], variant))
        if pattern is not None:
            candidates.extend(regex_examples(pattern, min_len, max_len))
        word = _WORD if variant == 0 else f"{_WORD}{variant}"
        candidates.append(_fit_length(word, min_len, max_len, variant))
        candidates.extend(_fit_length(c, min_len, max_len, variant) for c in ("x", "a", "0", "text_x"))
        valid = list(dict.fromkeys(c for c in candidates if fits(c)))
        if not valid:
            raise self.fail(
                path,
                f"no string found for pattern={pattern!r} minLength={min_len} maxLength={max_len}",
            )
        return valid[min(variant, len(valid) - 1)] if pattern is not None else valid[0]

    def number(
        self, schema: Mapping[str, Any], path: tuple[str, ...], integer: bool, variant: int
    ) -> int | float:
        lo = _num(schema.get("minimum"))
        hi = _num(schema.get("maximum"))
        lo_ex = _num(schema.get("exclusiveMinimum"))
        hi_ex = _num(schema.get("exclusiveMaximum"))
        step = _num(schema.get("multipleOf"))
        if integer:
            lower = _max_opt(
                math.ceil(lo) if lo is not None else None,
                math.floor(lo_ex) + 1 if lo_ex is not None else None,
            )
            upper = _min_opt(
                math.floor(hi) if hi is not None else None,
                math.ceil(hi_ex) - 1 if hi_ex is not None else None,
            )
            if lower is not None:
                value = lower
            elif upper is not None and upper < 0:
                value = upper
            else:
                value = 0
            delta = 1
            if step is not None and step > 0 and float(step).is_integer():
                delta = int(step)
                above = math.ceil(value / delta) * delta
                value = above if upper is None or above <= upper else math.floor(value / delta) * delta
            if variant:
                if upper is None or value + variant * delta <= upper:
                    value += variant * delta
                elif lower is None or value - variant * delta >= lower:
                    value -= variant * delta
            if (lower is not None and value < lower) or (upper is not None and value > upper):
                raise self.fail(path, f"no integer within the bounds {_bounds(schema)}")
            return int(value)
        bottom, bottom_open = _tighter(lo, lo_ex, max)
        top, top_open = _tighter(hi, hi_ex, min)
        if bottom is None and top is None:
            fvalue = 0.0
        elif top is None:
            assert bottom is not None
            fvalue = bottom + 1.0 if bottom_open else bottom
        elif bottom is None:
            zero_ok = top > 0 or (top == 0 and not top_open)
            fvalue = 0.0 if zero_ok else (top - 1.0 if top_open else top)
        else:
            fvalue = (bottom + top) / 2 if bottom_open else bottom
        if variant:
            fvalue += (top - fvalue) * variant / (2 * (variant + 1)) if top is not None else variant
        if step is not None and step > 0:
            fvalue = math.ceil(round(fvalue / step, 9)) * step
        return fvalue


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _tighter(
    closed: float | None, open_: float | None, pick: Callable[[float, float], float]
) -> tuple[float | None, bool]:
    """The tighter of an inclusive and an exclusive bound -> (bound, exclusive?)."""
    if closed is None:
        return open_, open_ is not None
    if open_ is None:
        return closed, False
    chosen = pick(closed, open_)
    return chosen, chosen == open_


def _max_opt(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _min_opt(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _bounds(schema: Mapping[str, Any]) -> str:
    keys = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf")
    return ", ".join(f"{k}={schema[k]}" for k in keys if k in schema)


def _fit_length(word: str, min_len: int, max_len: int | None, variant: int) -> str:
    if len(word) < min_len:
        word = word + "x" * (min_len - len(word))
    if max_len is not None and len(word) > max_len:
        word = word[:max_len] if variant == 0 or max_len == 0 else (word[: max_len - 1] + str(variant % 10))
    return word


def _vary_format(example: str, variant: int) -> str:
    if not variant:
        return example
    if example.startswith("user@"):
        return f"user{variant}@example.com"
    if example.startswith("https://"):
        return f"{example}{variant}"
    if len(example) == 36 and example.count("-") == 4:  # uuid
        return example[:-12] + f"{variant:012d}"
    return example


# --- minimal strings for a regex ----------------------------------------------------------------

_sre: Any = importlib.import_module("re._parser")
_const: Any = importlib.import_module("re._constants")

# Characters tried for a class like [a-z] or [^,]: readable ones first, then printable ASCII.
_CLASS_CANDIDATES = "".join(dict.fromkeys("xa0A_-. " + "".join(chr(i) for i in range(33, 127))))


def regex_examples(pattern: str, min_len: int = 0, max_len: int | None = None) -> list[str]:
    """Short strings that `re.search(pattern, s)` should accept, shortest first (unverified:
    callers check). Repetitions take their minimum count, then a few larger counts (to reach a
    `minLength`); alternations and classes take their first/a preferred member, then others."""
    try:
        parsed = _sre.parse(pattern)
    except Exception:
        return []
    out: list[str] = []
    boosts = sorted({0, 1, 2, 3, 5, 8, max(min_len, 0)})
    for offset in range(4):
        for boost in boosts:
            try:
                text = _Regex(boost, offset).gen(parsed)
            except _Unsupported:
                return out
            if text not in out:
                out.append(text)
    del max_len  # length is checked by the caller
    return out


class _Unsupported(Exception):
    pass


class _Regex:
    def __init__(self, boost: int, offset: int) -> None:
        self.boost = boost
        self.offset = offset
        self.groups: dict[int, str] = {}

    def gen(self, items: Any) -> str:
        return "".join(self.item(op, av) for op, av in items)

    def item(self, op: Any, av: Any) -> str:
        c = _const
        if op is c.LITERAL:
            return chr(av)
        if op is c.NOT_LITERAL:
            others = [ch for ch in _CLASS_CANDIDATES if ord(ch) != av]
            return others[self.offset % len(others)]
        if op is c.ANY:
            return "x"
        if op is c.IN:
            return self.char_in(av)
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)):
            low, high, sub = av
            count = low + self.boost
            if high is not c.MAXREPEAT:
                count = min(count, high)
            return "".join(self.gen(sub) for _ in range(count))
        if op is c.SUBPATTERN:
            group, _add, _del, sub = av
            text = self.gen(sub)
            if group is not None:
                self.groups[group] = text
            return text
        if op is getattr(c, "ATOMIC_GROUP", None):
            return self.gen(av)
        if op is c.BRANCH:
            _, branches = av
            return self.gen(branches[self.offset % len(branches)])
        if op is c.GROUPREF:
            return self.groups.get(av, "")
        if op is c.GROUPREF_EXISTS:
            group, yes, no = av
            return self.gen(yes) if group in self.groups else (self.gen(no) if no else "")
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            return ""
        raise _Unsupported(str(op))

    def char_in(self, items: list[tuple[Any, Any]]) -> str:
        negate = bool(items) and items[0][0] is _const.NEGATE
        body = items[1:] if negate else items
        matching = [ch for ch in _CLASS_CANDIDATES if _in_class(ch, body) != negate]
        if not matching:
            raise _Unsupported("empty character class")
        if not negate and body and body[0][0] is _const.LITERAL and self.offset == 0:
            return chr(body[0][1])  # an explicit first member reads best: [abc] -> "a"
        return matching[self.offset % len(matching)]


def _in_class(ch: str, items: list[tuple[Any, Any]]) -> bool:
    c = _const
    code = ord(ch)
    for op, av in items:
        if op is c.LITERAL and av == code:
            return True
        if op is c.RANGE and av[0] <= code <= av[1]:
            return True
        if op is c.CATEGORY and _in_category(ch, av):
            return True
    return False


def _in_category(ch: str, category: Any) -> bool:
    c = _const
    if category is c.CATEGORY_DIGIT:
        return ch.isdigit()
    if category is c.CATEGORY_NOT_DIGIT:
        return not ch.isdigit()
    if category is c.CATEGORY_SPACE:
        return ch.isspace()
    if category is c.CATEGORY_NOT_SPACE:
        return not ch.isspace()
    if category is c.CATEGORY_WORD:
        return ch.isalnum() or ch == "_"
    if category is c.CATEGORY_NOT_WORD:
        return not (ch.isalnum() or ch == "_")
    return False
