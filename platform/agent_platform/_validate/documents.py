"""Validate one located document against its kind's pydantic model, turning pydantic's errors into
located messages a person can act on (with "did you mean" for misspelt fields and values)."""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from agent_platform import API_VERSION
from agent_platform._diagnostics import Diagnostic, Diagnostics, Severity, SourceLocation, did_you_mean
from agent_platform._load import Document, walk_existing
from agent_platform._spec.common import (
    ENV_VAR_PATTERN,
    NAME_PATTERN,
    PYTHON_REF_PATTERN,
    STEP_NAME_PATTERN,
    FieldError,
    SpecModel,
)
from agent_platform._spec.kinds import DOCUMENT_MODELS, KINDS, PROVIDER_NAME_PATTERN, SpecDocument


@dataclass(slots=True)
class TypedSpec:
    """A document that passed its kind's model: the typed spec plus where it came from."""

    document: Document
    model: SpecDocument

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def name(self) -> str:
        return self.model.metadata.name

    def has(self, field: str) -> bool:
        """Whether spec field `field` (its Python name) holds a validated value: always, here."""
        return True

    def locate(self, *path: str | int) -> SourceLocation:
        return self.document.locate(path)

    def key_location(self, *path: str | int) -> SourceLocation:
        return self.document.key_location(path)


@dataclass(slots=True)
class PartialSpec:
    """A document that failed its kind's model, kept for the checks its valid parts allow.

    Its errors are already reported; what remains are the top-level spec fields whose values pass
    their own field's validation (an absent optional field counts, with its default), so that
    reference, template, JSON Schema and plugin checks still run on them: one mistake in `limits`
    must not hide an unknown tool or a broken template. A field that failed is absent from `model`
    (reading it raises AttributeError), so a check that forgets to ask `has()` fails loudly instead
    of checking a default. A partial spec never reaches compilation."""

    document: Document
    model: SpecDocument  # built with model_construct from the valid fields only: ask has() first
    valid_fields: frozenset[str]

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def name(self) -> str | None:
        return self.document.name  # metadata may be the broken part

    def has(self, field: str) -> bool:
        return field in self.valid_fields

    def locate(self, *path: str | int) -> SourceLocation:
        return self.document.locate(path)

    def key_location(self, *path: str | int) -> SourceLocation:
        return self.document.key_location(path)


# What the checks after document validation work on: whole specs, and what is valid of the rest.
CheckedSpec = TypedSpec | PartialSpec


_PATTERN_HINTS = {
    NAME_PATTERN: "names use lowercase letters, digits and '-', start and end with a letter or digit, "
    "at most 63 characters",
    STEP_NAME_PATTERN: "step names use lowercase letters, digits and '_' and start with a letter "
    "(they are used in templates as steps.<name>)",
    ENV_VAR_PATTERN: "an environment variable name such as ANTHROPIC_API_KEY",
    PYTHON_REF_PATTERN: "a Python reference 'package.module:function'",
    r"^https?://": "a URL starting with http:// or https://",
    r"^[a-z][a-z0-9_-]*$": "task types use lowercase letters, digits, '_' and '-'",
    r"^[a-z_][a-z0-9_]*$": "a lowercase identifier",
    PROVIDER_NAME_PATTERN: "a provider: anthropic, openai, scripted, or a custom provider's name "
    "(lowercase letters, digits, '_' and '-')",
}

# At most this many errors are reported per document, then how many more there are: a list of
# 60,000 wrong values is one mistake repeated, and every report costs locating it in the file.
MAX_ERRORS_PER_DOCUMENT = 100

_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO", "ON", "OFF"}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _field_path(loc: tuple[str | int, ...], data: Any) -> str:
    """The dotted path of the parts of `loc` that exist in the data (skips union tags)."""
    _, resolved = walk_existing(data, loc)
    text = ""
    for part in resolved:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# --- which field names are legal at a location (for "did you mean") ---------------------------


def _unwrap(tp: Any) -> Iterator[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        yield from _unwrap(typing.get_args(tp)[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from _unwrap(arg)
    else:
        yield tp


def _fields_of(model: type[BaseModel]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        fields[info.alias or name] = info.annotation
    return fields


def legal_fields(root: type[BaseModel], loc: tuple[str | int, ...]) -> set[str]:
    """Field names accepted by the model(s) at `loc` (a path of keys; indices and tags tolerated)."""
    current: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            for t in _unwrap(tp):
                origin = typing.get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel):
                    if isinstance(part, str):
                        fields = _fields_of(t)
                        if part in fields:
                            nxt.append(fields[part])
                        elif part == t.__name__ or _tag_of(t) == part:
                            nxt.append(t)
                elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
                    nxt.extend(typing.get_args(t)[:1])
                elif origin is dict and isinstance(part, str):
                    args = typing.get_args(t)
                    if len(args) == 2:
                        nxt.append(args[1])
        if nxt:
            current = nxt
    names: set[str] = set()
    for tp in current:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                names.update(_fields_of(t))
    return names


def _tag_of(model: type[BaseModel]) -> str | None:
    info = model.model_fields.get("type")
    if info is None:
        return None
    args = typing.get_args(info.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


# --- error translation ------------------------------------------------------------------------


def _message(error: Any, data: Any, root: type[BaseModel]) -> tuple[str, tuple[str | int, ...], bool]:
    """-> (message, location path, whether to point at the key rather than the value)."""
    etype: str = error["type"]
    loc: tuple[str | int, ...] = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    value = error.get("input")
    where = _field_path(loc, data)
    prefix = f"{where}: " if where else ""

    if etype == "extra_forbidden":
        field = str(loc[-1])
        parent_path = _field_path(loc[:-1], data)
        candidates = legal_fields(root, tuple(p for p in loc[:-1]))
        scope = f" in {parent_path}" if parent_path else ""
        return f"unknown field {field!r}{scope}{did_you_mean(field, candidates)}", loc, True
    if etype == "missing":
        field = str(loc[-1])
        parent_path = _field_path(loc[:-1], data)
        scope = f" in {parent_path}" if parent_path else ""
        return f"missing required field {field!r}{scope}", loc[:-1], True
    if etype == "union_tag_invalid":
        tag = ctx.get("tag")
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        return (
            f"{prefix}unknown {discriminator} {str(tag)!r} (expected one of: {', '.join(tags)})"
            f"{did_you_mean(str(tag), tags)}",
            (*loc, discriminator),
            False,
        )
    if etype == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        return f"{prefix}missing required field '{discriminator}'", loc, True
    if etype == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        shown = repr(value) if isinstance(value, str | int | float) else _describe(value)
        return f"{prefix}invalid value {shown}; expected {expected}{hint}", loc, False
    if etype == "bool_type":
        extra = ""
        if isinstance(value, str) and value in _YAML11_BOOLS:
            extra = " (YAML 1.1 words like yes/no/on/off are strings here; write true or false)"
        return f"{prefix}expected true or false, got {_describe(value)}{extra}", loc, False
    if etype in ("int_type", "int_parsing", "int_from_float"):
        extra = " (remove the quotes)" if isinstance(value, str) else ""
        return f"{prefix}expected an integer, got {_describe(value)}{extra}", loc, False
    if etype == "finite_number":
        return f"{prefix}expected a finite number, got {_describe(value).removeprefix('number ')}", loc, False
    if etype in ("float_type", "float_parsing"):
        extra = " (remove the quotes)" if isinstance(value, str) else ""
        return f"{prefix}expected a number, got {_describe(value)}{extra}", loc, False
    if etype == "string_type":
        extra = " (quote it)" if isinstance(value, bool | int | float) else ""
        return f"{prefix}expected a string, got {_describe(value)}{extra}", loc, False
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return f"{prefix}expected a mapping, got {_describe(value)}", loc, False
    if etype == "list_type":
        return f"{prefix}expected a list, got {_describe(value)}", loc, False
    if etype == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        hint = _PATTERN_HINTS.get(pattern, f"it must match {pattern}")
        return f"{prefix}invalid value {_describe(value)}: {hint}", loc, False
    if etype == "string_too_short":
        return f"{prefix}must not be empty", loc, False
    if etype in ("too_short", "too_long"):
        return f"{prefix}{error['msg'][0].lower()}{error['msg'][1:]}", loc, False
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            etype
        ]
        bound = next(iter(ctx.values()), "?")
        return f"{prefix}must be {op} {bound}, got {value}", loc, False
    if etype in ("value_error", "assertion_error"):
        exc = ctx.get("error")
        text = str(exc) if exc is not None else error["msg"]
        if isinstance(exc, FieldError) and exc.field:
            where = _field_path((*loc, *exc.field), data)
            return f"{where}: {text}", (*loc, *exc.field), exc.at_key
        return f"{prefix}{text}", loc, False
    msg: str = error["msg"]
    return f"{prefix}{msg[0].lower()}{msg[1:]}", loc, False


def _union_branch_matches(tag: str | int, value: Any) -> bool:
    """Whether the union member named `tag` could have been meant for `value`."""
    if not isinstance(tag, str):
        return True
    if tag in ("str", "constrained-str", "function-after[...]"):
        return isinstance(value, str)
    if tag in ("int", "float", "constrained-int", "constrained-float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tag == "bool":
        return isinstance(value, bool)
    if tag == "none":
        return value is None
    if tag.startswith("list["):
        return isinstance(value, list)
    if tag.startswith("dict["):
        return isinstance(value, dict)
    if tag[:1].isupper():  # a model class name
        return isinstance(value, dict)
    if tag.startswith("function-") and re.search(r"\b[A-Z]\w*\]$", tag):
        return isinstance(value, dict)  # a model wrapped by a validator: function-after[..., Model]
    return True


def _prune_union_noise(errors: list[Any], data: Any) -> list[Any]:
    """For `name | InlineModel` fields pydantic reports every branch; keep the branch the user meant.
    A value that fits no branch keeps its first error, per union: a wrong value in one field must
    not silence another."""
    kept: list[tuple[int, Any]] = []
    misfits: dict[tuple[Any, ...], tuple[int, Any]] = {}  # union's location -> its first error
    for position, error in enumerate(errors):
        loc = tuple(error["loc"])
        node = data
        union_at: tuple[Any, ...] | None = None
        for index, part in enumerate(loc):
            child, followed = walk_existing(node, [part])
            if followed:
                node = child
            elif (index + 1 < len(loc) or error["type"] not in ("missing", "extra_forbidden")) and (
                not _union_branch_matches(part, node)
            ):
                # `part` is a union tag and that branch does not fit the value the user wrote.
                union_at = loc[:index]
                break
        if union_at is None:
            kept.append((position, error))
        else:
            misfits.setdefault(union_at, (position, error))
    for union_at, first in misfits.items():
        if not any(tuple(error["loc"])[: len(union_at)] == union_at for _, error in kept):
            kept.append(first)
    return [error for _, error in sorted(kept, key=lambda item: item[0])]


def _drop_missing_explained_by_typos(errors: list[Any]) -> list[Any]:
    """`instrutions:` yields "unknown field" (with did-you-mean) *and* "missing instructions":
    one mistake, one message — keep the first."""
    unknown: dict[tuple[Any, ...], list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            unknown.setdefault(tuple(error["loc"][:-1]), []).append(str(error["loc"][-1]))
    kept = []
    for error in errors:
        if error["type"] == "missing":
            parent, field = tuple(error["loc"][:-1]), str(error["loc"][-1])
            if did_you_mean(field, unknown.get(parent, [])):
                continue
        kept.append(error)
    return kept


# --- what is valid of an invalid document ---------------------------------------------------------


@functools.cache
def _one_field_model(model: type[BaseModel], field: str) -> type[BaseModel]:
    """A model holding only `field` of `model`, with the same annotation, constraints, alias and
    strictness: it accepts exactly the values `model` accepts for that field."""
    info = model.model_fields[field]
    definition: dict[str, Any] = {field: (info.annotation, info)}
    one_field: type[BaseModel] = create_model(f"{model.__name__}_{field}", __base__=SpecModel, **definition)
    return one_field


def _spec_class(kind: str, raw_spec: dict[str, Any]) -> type[BaseModel] | None:
    """The model of a document's `spec`: the kind's, or for a union (guardrails) the member its
    `type` names; None when that tag is itself wrong."""
    annotation = DOCUMENT_MODELS[kind].model_fields["spec"].annotation
    members = [t for t in _unwrap(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(members) == 1:
        return members[0]
    return next((m for m in members if _tag_of(m) == raw_spec.get("type")), None)


def _partial_spec(doc: Document, kind: str, data: dict[str, Any]) -> PartialSpec | None:
    """The spec fields of a document that failed its kind's model whose values are valid on their
    own, or None when its `spec` is not a mapping or names no known type."""
    raw_spec = data.get("spec")
    if not isinstance(raw_spec, dict):
        return None
    spec_cls = _spec_class(kind, raw_spec)
    if spec_cls is None:
        return None
    values: dict[str, Any] = {}
    valid: set[str] = set()
    for field, info in spec_cls.model_fields.items():
        key = info.alias or field
        if key not in raw_spec:
            if not info.is_required():
                valid.add(field)  # its default, as the whole model would have filled in
            continue
        try:
            checked = _one_field_model(spec_cls, field).model_validate({key: raw_spec[key]})
        except ValidationError:
            continue
        values[field] = getattr(checked, field)
        valid.add(field)
    spec = spec_cls.model_construct(**values)
    for field in spec_cls.model_fields.keys() - valid:
        spec.__dict__.pop(field, None)  # model_construct filled in defaults for broken fields too
    envelope: dict[str, Any] = {"kind": kind, "spec": spec}  # metadata may be broken: name from doc
    model = DOCUMENT_MODELS[kind].model_construct(**envelope)
    return PartialSpec(document=doc, model=model, valid_fields=frozenset(valid))  # type: ignore[arg-type]


def validate_document(doc: Document, diags: Diagnostics) -> TypedSpec | PartialSpec | None:
    """Check the envelope, then the kind's model; all problems go to `diags`. A document that fails
    its kind's model yields a `PartialSpec` of its valid fields (when there is a spec to speak of);
    one with a broken envelope or an unknown kind yields None."""
    data = doc.data
    if not isinstance(data, dict):
        diags.error(
            "not-a-mapping",
            "a spec document must be a mapping with apiVersion, kind, metadata and spec",
            doc.start if data is None else doc.locate(()),
        )
        return None
    kind = data.get("kind")
    name = doc.name
    envelope_ok = True
    subject_kind = kind if isinstance(kind, str) and kind in DOCUMENT_MODELS else None
    if "apiVersion" not in data:
        diags.error(
            "missing-field", "missing required field 'apiVersion'", doc.locate(()), subject_kind, name
        )
        envelope_ok = False
    elif data["apiVersion"] != API_VERSION:
        diags.error(
            "unknown-api-version",
            f"unknown apiVersion {data['apiVersion']!r} (expected '{API_VERSION}')",
            doc.locate(("apiVersion",)),
            subject_kind,
            name,
        )
        envelope_ok = False
    if "kind" not in data:
        diags.error("missing-field", "missing required field 'kind'", doc.locate(()), None, name)
        return None
    if not isinstance(kind, str) or kind not in DOCUMENT_MODELS:
        diags.error(
            "unknown-kind",
            f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)}){did_you_mean(str(kind), KINDS)}",
            doc.locate(("kind",)),
            None,
            name,
        )
        return None
    if not envelope_ok:
        return None
    model_cls = DOCUMENT_MODELS[kind]
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        reported: list[Diagnostic] = []
        left_out: set[tuple[Any, ...]] = set()
        for error in _drop_missing_explained_by_typos(
            _prune_union_noise(exc.errors(include_url=False), data)
        ):
            if len(reported) >= MAX_ERRORS_PER_DOCUMENT:
                left_out.add((tuple(error["loc"]), error["type"]))
                continue
            message, path, at_key = _message(error, data, model_cls)
            location = doc.key_location(path) if at_key else doc.locate(path)
            key = (str(location), message)
            if key in seen:
                continue
            seen.add(key)
            reported.append(
                Diagnostic(Severity.ERROR, f"invalid-{error['type']}", message, location, kind, name)
            )
        if left_out:
            last = reported[-1]
            more = f"... and {len(left_out):,} more errors in this document"
            reported.append(Diagnostic(Severity.ERROR, last.code, more, last.location, kind, name))
        diags.extend(reported)
        return _partial_spec(doc, kind, data)
    return TypedSpec(document=doc, model=model)  # type: ignore[arg-type]
