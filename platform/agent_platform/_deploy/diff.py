"""The semantic diff `platform apply` prints for every updated spec: what a reviewer needs to know
(instructions as a unified diff, tools added/removed, model changed, limits raised, replicas scaled,
schema fields added/removed with breaking-change hints), not "the spec changed".

The input is two *snapshots* of one spec, the plain JSON the deployment stores (see `snapshot_of`).
Known fields get a dedicated rule; everything else falls to a generic recursive diff, so no change
is ever silent. The result is deterministic: it does not depend on the key order of the snapshots.

Pure: imports no Ray and no LLM SDK (it runs in CI through `platform apply --dry-run`)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agent_platform._validate.documents import TypedSpec

Op = Literal["added", "removed", "changed"]
PathPart = str | int
Parts = tuple[PathPart, ...]

# The categories of a change, in the order `render_text` shows them.
CATEGORIES: tuple[str, ...] = (
    "instructions",
    "model",
    "tools",
    "delegates",
    "guardrails",
    "memory",
    "schema",
    "steps",
    "routes",
    "limits",
    "budget",
    "runtime",
    "other",
)
_CATEGORY_RANK = {name: i for i, name in enumerate(CATEGORIES)}
_KIND_ORDER = ("Model", "Tool", "Memory", "Guardrail", "Agent", "Pipeline", "Supervisor")
_MARKERS: dict[str, str] = {"added": "+", "removed": "-", "changed": "~"}

_BUDGET_KEYS = frozenset({"max_total_tokens", "max_cost_usd", "max_tool_calls"})
_DURATION_KEYS = frozenset(
    {"timeout", "task_timeout", "reset_after", "ttl", "retention", "recency_half_life", "initial", "max"}
)
_STEP_TARGETS = ("tool", "agent", "pipeline", "llm", "memory")
_ROUTE_TARGETS = ("agent", "pipeline", "remote_agent")


@dataclass(frozen=True, slots=True)
class Change:
    """One semantic change. `path` is dotted from the snapshot root (`spec.limits.max_iterations`,
    `spec.tools.web_search`, `spec.steps.summarise.llm.prompt`); list items that have a name are
    addressed by it, other list items by `[index]`. `lines` holds the unified diff of a text."""

    category: str
    path: str
    op: Op
    old: Any
    new: Any
    summary: str
    lines: tuple[str, ...] = ()
    breaking: bool = False

    @property
    def marker(self) -> str:
        return _MARKERS[self.op]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "category": self.category,
            "path": self.path,
            "op": self.op,
            "old": self.old,
            "new": self.new,
            "summary": self.summary,
            "breaking": self.breaking,
        }
        if self.lines:
            data["diff"] = list(self.lines)
        return data


@dataclass(slots=True)
class SpecDiff:
    """The changes between two snapshots of one spec, in display order."""

    kind: str
    name: str
    changes: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)

    def paths(self) -> list[str]:
        return [c.path for c in self.changes]

    def by_category(self, category: str) -> list[Change]:
        return [c for c in self.changes if c.category == category]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "breaking": self.breaking,
            "changes": [c.to_json() for c in self.changes],
        }


# --- snapshots ----------------------------------------------------------------------------------


def snapshot_of(spec: TypedSpec) -> dict[str, Any]:
    """The JSON snapshot of a validated spec that the deployment stores and `diff_specs` compares:
    kind, name, the full spec (defaults included) and, when present, labels and annotations."""
    document = spec.model
    dumped = document.model_dump(mode="json", by_alias=True)
    snapshot: dict[str, Any] = {"kind": document.kind, "name": document.metadata.name, "spec": dumped["spec"]}
    if document.metadata.labels:
        snapshot["labels"] = dict(sorted(document.metadata.labels.items()))
    if document.metadata.annotations:
        snapshot["annotations"] = dict(sorted(document.metadata.annotations.items()))
    return snapshot


# --- formatting helpers -------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def format_path(parts: Sequence[PathPart]) -> str:
    """`("spec", "steps", "fetch", "input")` -> `spec.steps.fetch.input`; indices as `[i]`, keys
    that are not plain identifiers as `["a.b"]`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _same(old: Any, new: Any) -> bool:
    """Equality that tells 1 from 1.0 and from true (a change of type is a change)."""
    return old is new or _canonical(old) == _canonical(new)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _seconds(value: float) -> str:
    if value >= 1 and float(value).is_integer():
        whole = int(value)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if whole % size == 0 and whole >= size:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    if 0 < value < 1 and float(value * 1000).is_integer():
        return f"{int(value * 1000)}ms"
    return f"{value:g}s"


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


def _bytes(value: int) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}B"


def _fmt(value: Any, key: PathPart | None = None, *, in_schema: bool = False) -> str:
    """A value as it appears in a sentence."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        if not in_schema and key in _DURATION_KEYS and 0 < value < 1e12:
            return _seconds(float(value))
        if not in_schema and key == "memory" and isinstance(value, int) and value > 0:
            return _bytes(value)
        return _number(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        shown = shown.replace("\n", "\\n")
        return f"'{shown}'"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(label: str, key: PathPart) -> str:
    part = f"[{key}]" if isinstance(key, int) else str(key)
    if not label:
        return part
    if isinstance(key, int):
        return label + part
    return f"{label} {part}" if label.endswith("'") else f"{label}.{part}"


def _unique_scalars(value: Any) -> list[str] | None:
    """Canonical keys of a list of distinct scalars, or None if it is not one."""
    if not isinstance(value, list):
        return None
    keys: list[str] = []
    for item in value:
        if isinstance(item, dict | list):
            return None
        keys.append(_canonical(item))
    return keys if len(set(keys)) == len(keys) else None


def _order_changed(old_keys: Sequence[str], new_keys: Sequence[str]) -> bool:
    common = set(old_keys) & set(new_keys)
    return [k for k in old_keys if k in common] != [k for k in new_keys if k in common]


def _type_text(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return "|".join(kind)
    return None


def _target_of(data: Any, keys: Sequence[str]) -> tuple[str, Any] | None:
    """The one target key (tool/agent/pipeline/llm) a step or route sets, with its value."""
    if not isinstance(data, dict):
        return None
    chosen = [(k, data[k]) for k in keys if data.get(k) is not None]
    return chosen[0] if len(chosen) == 1 else None


def _describe_target(target: tuple[str, Any]) -> str:
    kind, value = target
    if kind == "llm":
        return "an llm call"
    if kind == "memory" and isinstance(value, dict):
        return f"memory {_fmt(value.get('name'))} ({value.get('layer', 'knowledge')} layer)"
    return f"{kind} {_fmt(value)}"


# --- categories ---------------------------------------------------------------------------------


def _category(kind: str, parts: Parts) -> str:
    if len(parts) < 2 or parts[0] != "spec":
        return "other"
    rest = parts[1:]
    top = rest[0]
    sub = rest[1] if len(rest) > 1 else None
    if top == "runtime":
        return "runtime"
    if kind == "Agent":
        if top == "limits":
            return "budget" if sub in _BUDGET_KEYS else "limits"
        table = {
            "instructions": "instructions",
            "model": "model",
            "tools": "tools",
            "delegates": "delegates",
            "guardrails": "guardrails",
            "memory": "memory",
            "inputs": "schema",
            "output": "schema",
        }
        return table.get(str(top), "other")
    if kind == "Pipeline":
        if top == "steps":
            step_field = rest[2] if len(rest) > 2 else None
            llm_field = rest[3] if len(rest) > 3 else None
            if step_field == "llm" and llm_field in ("prompt", "system"):
                return "instructions"
            if step_field == "llm" and llm_field == "model":
                return "model"
            if step_field == "output":
                return "schema"
            if step_field == "timeout":
                return "limits"
            return "steps"
        table = {
            "inputs": "schema",
            "output": "schema",
            "returns": "steps",
            "timeout": "limits",
            "guardrails": "guardrails",
        }
        return table.get(str(top), "other")
    if kind == "Supervisor":
        table = {
            "routes": "routes",
            "concurrency": "limits",
            "max_queue": "limits",
            "task_timeout": "limits",
            "distribution": "runtime",
        }
        return table.get(str(top), "other")
    if kind == "Model":
        if top == "pricing":
            return "budget"
        return "limits" if top in ("timeout", "retry") else "model"
    if kind == "Tool":
        table = {
            "description": "instructions",
            "input_schema": "schema",
            "output_schema": "schema",
            "guardrails": "guardrails",
            "timeout": "limits",
            "retry": "limits",
            "circuit_breaker": "limits",
            "isolation": "runtime",
        }
        return table.get(str(top), "other")
    if kind == "Memory":
        return "model" if rest[:3] == ("working", "compaction", "model") else "memory"
    if kind == "Guardrail":
        if top == "schema":
            return "schema"
        if top == "tools":
            return "tools"
        return "budget" if top in _BUDGET_KEYS else "guardrails"
    return "other"


# --- the differ ---------------------------------------------------------------------------------

Handler = Callable[["_Differ", Parts, str, Any, Any], None]


class _Differ:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.changes: list[Change] = []

    # --- emitting ---

    def emit(
        self,
        parts: Parts,
        op: Op,
        old: Any,
        new: Any,
        summary: str,
        *,
        lines: Sequence[str] = (),
        breaking: bool = False,
    ) -> None:
        self.changes.append(
            Change(
                category=_category(self.kind, parts),
                path=format_path(parts),
                op=op,
                old=old,
                new=new,
                summary=summary,
                lines=tuple(lines),
                breaking=breaking,
            )
        )

    # --- dispatch ---

    def diff(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        if _same(old, new):
            return
        handler = self._handler(parts)
        if handler is not None:
            handler(self, parts, label, old, new)
        else:
            self.generic(parts, label, old, new)

    def _handler(self, parts: Parts) -> Handler | None:
        if len(parts) < 2 or parts[0] != "spec":
            return None
        rest = parts[1:]
        kind = self.kind
        if rest == ("runtime", "replicas"):
            return _Differ.replicas
        if kind == "Agent":
            return _AGENT_HANDLERS.get(rest)
        if kind == "Pipeline":
            if len(rest) == 4 and rest[0] == "steps" and rest[2] == "llm":
                return {"prompt": _Differ.text, "system": _Differ.text, "model": _Differ.model}.get(
                    str(rest[3])
                )
            if len(rest) == 3 and rest[0] == "steps" and rest[2] == "output":
                return _Differ.output_schema
            return _PIPELINE_HANDLERS.get(rest)
        if kind == "Supervisor":
            return _Differ.routes if rest == ("routes",) else None
        if kind == "Tool":
            return _TOOL_HANDLERS.get(rest)
        if kind == "Memory":
            return _Differ.model if rest == ("working", "compaction", "model") else None
        if kind == "Guardrail":
            return _GUARDRAIL_HANDLERS.get(rest)
        return None

    # --- generic ---

    def generic(self, parts: Parts, label: str, old: Any, new: Any, *, in_schema: bool = False) -> None:
        if _same(old, new):
            return
        if isinstance(old, dict) and isinstance(new, dict):
            self.generic_dict(parts, label, old, new, in_schema=in_schema)
        elif isinstance(old, list) and isinstance(new, list):
            self.generic_list(parts, label, old, new, in_schema=in_schema)
        else:
            self.scalar(parts, label, old, new, in_schema=in_schema)

    def generic_dict(
        self,
        parts: Parts,
        label: str,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        in_schema: bool = False,
        skip: Iterable[str] = (),
    ) -> None:
        skipped = set(skip)
        for key in sorted(set(old) | set(new)):
            if key in skipped:
                continue
            child, child_label = (*parts, key), _join(label, key)
            if key not in new:
                self.emit(
                    child,
                    "removed",
                    old[key],
                    None,
                    f"{child_label} removed (was {_fmt(old[key], key, in_schema=in_schema)})",
                )
            elif key not in old:
                self.emit(
                    child,
                    "added",
                    None,
                    new[key],
                    f"{child_label} added: {_fmt(new[key], key, in_schema=in_schema)}",
                )
            elif in_schema:
                self.generic(child, child_label, old[key], new[key], in_schema=True)
            else:
                self.diff(child, child_label, old[key], new[key])

    def generic_list(
        self, parts: Parts, label: str, old: list[Any], new: list[Any], *, in_schema: bool = False
    ) -> None:
        old_keys, new_keys = _unique_scalars(old), _unique_scalars(new)
        if old_keys is not None and new_keys is not None:
            self.scalar_set(parts, label, old, new, old_keys, new_keys, noun=None)
            return
        for i in range(max(len(old), len(new))):
            child, child_label = (*parts, i), _join(label, i)
            if i >= len(new):
                self.emit(child, "removed", old[i], None, f"{child_label} removed (was {_fmt(old[i])})")
            elif i >= len(old):
                self.emit(child, "added", None, new[i], f"{child_label} added: {_fmt(new[i])}")
            elif in_schema:
                self.generic(child, child_label, old[i], new[i], in_schema=True)
            else:
                self.diff(child, child_label, old[i], new[i])

    def scalar_set(
        self,
        parts: Parts,
        label: str,
        old: list[Any],
        new: list[Any],
        old_keys: list[str],
        new_keys: list[str],
        *,
        noun: str | None,
    ) -> None:
        """A list of distinct names or values: report members added and removed, then order."""
        old_by_key = dict(zip(old_keys, old, strict=True))
        new_by_key = dict(zip(new_keys, new, strict=True))
        for key in sorted(set(old_keys) ^ set(new_keys)):
            value = old_by_key[key] if key in old_by_key else new_by_key[key]
            member: PathPart = value if isinstance(value, str) else _canonical(value)
            what = f"{noun} {_fmt(value)}" if noun else f"{label}: {_fmt(value)}"
            if key in old_by_key:
                self.emit((*parts, member), "removed", value, None, f"{what} removed")
            else:
                self.emit((*parts, member), "added", None, value, f"{what} added")
        if _order_changed(old_keys, new_keys):
            shown_old = ", ".join(_fmt(v) for v in old)
            shown_new = ", ".join(_fmt(v) for v in new)
            self.emit(parts, "changed", old, new, f"{label} reordered: {shown_old} → {shown_new}")

    def scalar(self, parts: Parts, label: str, old: Any, new: Any, *, in_schema: bool = False) -> None:
        key = parts[-1] if parts else None
        unlimited = not in_schema and key in _BUDGET_KEYS

        def show(value: Any) -> str:
            return _fmt(value, key, in_schema=in_schema)

        if _is_number(old) and _is_number(new):
            if new > old:
                summary = f"{label} raised from {show(old)} to {show(new)}"
            elif new < old:
                summary = f"{label} lowered from {show(old)} to {show(new)}"
            else:
                summary = f"{label} changed from {show(old)} to {show(new)}"
        elif old is None:
            summary = f"{label} set to {show(new)} (was {'unlimited' if unlimited else 'unset'})"
        elif new is None:
            summary = f"{label} unset (was {show(old)}{'; now unlimited' if unlimited else ''})"
        else:
            summary = f"{label} changed from {show(old)} to {show(new)}"
        self.emit(parts, "changed", old, new, summary)

    # --- dedicated rules ---

    def metadata_map(self, parts: Parts, noun: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Labels and annotations: `label 'team' changed from 'search' to 'research'`."""
        for key in sorted(set(old) | set(new)):
            child, what = (*parts, key), f"{noun} {_fmt(key)}"
            if key not in new:
                self.emit(child, "removed", old[key], None, f"{what} removed (was {_fmt(old[key])})")
            elif key not in old:
                self.emit(child, "added", None, new[key], f"{what} added: {_fmt(new[key])}")
            elif not _same(old[key], new[key]):
                self.generic(child, what, old[key], new[key])

    def text(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        """Prompt text: a unified line diff."""
        if not (isinstance(old, str | None) and isinstance(new, str | None)):
            self.generic(parts, label, old, new)
            return
        old_lines = (old or "").splitlines()
        new_lines = (new or "").splitlines()
        lines = list(difflib.unified_diff(old_lines, new_lines, lineterm="", n=2))[2:]
        added = sum(1 for line in lines if line.startswith("+"))
        removed = sum(1 for line in lines if line.startswith("-"))
        if old is None:
            summary = f"{label} set ({_lines(added)})"
        elif new is None:
            summary = f"{label} unset (was {_lines(removed)})"
        elif lines:
            summary = f"{label} changed (+{added} -{removed} lines)"
        else:
            summary = f"{label} changed (line endings only)"
        self.emit(parts, "changed", old, new, summary, lines=lines)

    def model(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        """A Model by name, or an inline model."""

        def describe(value: Any) -> str:
            if isinstance(value, str):
                return _fmt(value)
            provider = value.get("provider")
            text = f"an inline {provider} model" if isinstance(provider, str) else "an inline model"
            name = value.get("name")
            return f"{text} {_fmt(name)}" if isinstance(name, str) else text

        if isinstance(old, dict) and isinstance(new, dict):
            self.generic_dict(parts, label, old, new)
        elif isinstance(old, str | dict) and isinstance(new, str | dict):
            self.emit(parts, "changed", old, new, f"{label} changed from {describe(old)} to {describe(new)}")
        else:
            self.generic(parts, label, old, new)

    def replicas(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        if _is_number(old) and _is_number(new) and old != new:
            direction = "up" if new > old else "down"
            summary = f"{label} scaled {direction} from {_number(old)} to {_number(new)}"
            self.emit(parts, "changed", old, new, summary)
        else:
            self.generic(parts, label, old, new)

    def steps(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        """Pipeline steps, matched by step name."""
        old_names, new_names = _step_names(old), _step_names(new)
        if old_names is None or new_names is None:
            self.generic(parts, label, old, new)
            return
        old_by = dict(zip(old_names, old, strict=True))
        new_by = dict(zip(new_names, new, strict=True))
        for name in sorted(set(old_names) | set(new_names)):
            step_parts, step_label = (*parts, name), f"step '{name}'"
            if name not in new_by:
                self.emit(
                    step_parts, "removed", old_by[name], None, f"{step_label} removed{_calls(old_by[name])}"
                )
            elif name not in old_by:
                self.emit(
                    step_parts, "added", None, new_by[name], f"{step_label} added{_calls(new_by[name])}"
                )
            else:
                self.step(step_parts, step_label, old_by[name], new_by[name])
        if _order_changed(old_names, new_names):
            summary = f"steps reordered: {', '.join(old_names)} → {', '.join(new_names)}"
            self.emit(parts, "changed", old_names, new_names, summary)

    def step(self, parts: Parts, label: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_target, new_target = _target_of(old, _STEP_TARGETS), _target_of(new, _STEP_TARGETS)
        skip: tuple[str, ...] = ()
        if old_target is not None and new_target is not None and not _same(old_target, new_target):
            if not (old_target[0] == new_target[0] == "llm"):
                summary = f"{label} retargeted from {_describe_target(old_target)} to {_describe_target(new_target)}"
                self.emit(parts, "changed", dict([old_target]), dict([new_target]), summary)
                skip = _STEP_TARGETS
        self.generic_dict(parts, label, old, new, skip=skip)

    def routes(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        """Supervisor routes, by task type."""
        if not (isinstance(old, dict) and isinstance(new, dict)):
            self.generic(parts, label, old, new)
            return
        for task in sorted(set(old) | set(new)):
            route_parts, route_label = (*parts, task), f"route '{task}'"
            if task not in new:
                target = _target_of(old[task], _ROUTE_TARGETS)
                to = f" (was → {_describe_target(target)})" if target else ""
                self.emit(route_parts, "removed", old[task], None, f"{route_label} removed{to}")
            elif task not in old:
                target = _target_of(new[task], _ROUTE_TARGETS)
                to = f" → {_describe_target(target)}" if target else ""
                self.emit(route_parts, "added", None, new[task], f"{route_label} added{to}")
            elif _same(old[task], new[task]):
                continue
            elif isinstance(old[task], dict) and isinstance(new[task], dict):
                before, after = _target_of(old[task], _ROUTE_TARGETS), _target_of(new[task], _ROUTE_TARGETS)
                skip: tuple[str, ...] = ()
                if before is not None and after is not None and not _same(before, after):
                    summary = f"{route_label} retargeted from {_describe_target(before)} to {_describe_target(after)}"
                    self.emit(route_parts, "changed", dict([before]), dict([after]), summary)
                    skip = _ROUTE_TARGETS
                self.generic_dict(route_parts, route_label, old[task], new[task], skip=skip)
            else:
                self.generic(route_parts, route_label, old[task], new[task])

    # --- JSON Schemas ---

    def input_schema(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        self.schema(parts, label, "", old, new, role="input")

    def output_schema(self, parts: Parts, label: str, old: Any, new: Any) -> None:
        self.schema(parts, label, "", old, new, role="output")

    def schema(
        self,
        parts: Parts,
        base: str,
        field_name: str,
        old: Any,
        new: Any,
        *,
        role: Literal["input", "output"],
    ) -> None:
        label = f"{base} field '{field_name}'" if field_name else base
        if _same(old, new):
            return
        if not field_name and (old is None or new is None):
            if old is None:
                self.emit(parts, "added", old, new, f"{base} schema added")
            else:
                self.emit(parts, "removed", old, new, f"{base} schema removed")
            return
        if not (isinstance(old, dict) and isinstance(new, dict)):
            self.generic(parts, label, old, new, in_schema=True)
            return
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_req, new_req = _string_set(old.get("required", [])), _string_set(new.get("required", []))
        skip = ["type"]
        appeared: set[str] = set()
        # An empty `properties`/`required` that appeared or went away changes no field: it is left
        # to the generic comparison below, which still reports it (the spec, and its hash, changed).
        if (
            isinstance(old_props, dict)
            and isinstance(new_props, dict)
            and _keyed_alike(old, new, "properties")
        ):
            skip.append("properties")
            for name in sorted(set(old_props) | set(new_props)):
                full = f"{field_name}.{name}" if field_name else name
                prop_parts = (*parts, "properties", name)
                if name not in new_props:
                    appeared.add(name)
                    was_required = old_req is not None and name in old_req
                    if was_required and role == "output":
                        note, breaking = " (breaking: it was required)", True
                    else:
                        note, breaking = (" (was required)" if was_required else ""), False
                    summary = f"{base} field '{full}' removed{note}"
                    self.emit(prop_parts, "removed", old_props[name], None, summary, breaking=breaking)
                elif name not in old_props:
                    appeared.add(name)
                    required = new_req is not None and name in new_req
                    details = [t for t in (_type_text(new_props[name]),) if t]
                    if required:
                        details.append("required")
                    note = f" ({', '.join(details)})" if details else ""
                    breaking = required and role == "input"
                    if breaking:
                        note = note[:-1] + "; breaking: callers must now send it)"
                    summary = f"{base} field '{full}' added{note}"
                    self.emit(prop_parts, "added", None, new_props[name], summary, breaking=breaking)
                else:
                    self.schema(prop_parts, base, full, old_props[name], new_props[name], role=role)
        old_req_list, new_req_list = old.get("required", []), new.get("required", [])
        if old_req is not None and new_req is not None and _keyed_alike(old, new, "required"):
            skip.append("required")
            req_parts = (*parts, "required")
            for name in sorted(old_req ^ new_req):
                if name in appeared:
                    continue  # told with the field's addition or removal
                full = f"{field_name}.{name}" if field_name else name
                if name in new_req:
                    breaking = role == "input"
                    note = " (breaking: callers must now send it)" if breaking else ""
                    summary = f"{base} field '{full}' is now required{note}"
                    self.emit((*req_parts, name), "added", None, name, summary, breaking=breaking)
                else:
                    breaking = role == "output"
                    note = " (breaking: consumers may rely on it)" if breaking else ""
                    summary = f"{base} field '{full}' is no longer required{note}"
                    self.emit((*req_parts, name), "removed", name, None, summary, breaking=breaking)
            if _order_changed(old_req_list, new_req_list):
                self.emit(
                    req_parts,
                    "changed",
                    old_req_list,
                    new_req_list,
                    f"{label} required reordered: {', '.join(old_req_list)} → {', '.join(new_req_list)}",
                )
        if "type" in old and "type" in new:
            if not _same(old["type"], new["type"]):
                before = _type_text(old) or _fmt(old["type"])
                after = _type_text(new) or _fmt(new["type"])
                summary = f"{label} type changed from {before} to {after} (breaking)"
                self.emit((*parts, "type"), "changed", old["type"], new["type"], summary, breaking=True)
        else:
            skip.remove("type")
        self.generic_dict(parts, label, old, new, in_schema=True, skip=skip)


def _keyed_alike(old: dict[str, Any], new: dict[str, Any], key: str) -> bool:
    """Both schemas have `key`, or neither, or what one has is not empty (then its entries tell)."""
    return (key in old) == (key in new) or bool(old.get(key) or new.get(key))


def _string_set(value: Any) -> set[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and len(set(value)) == len(value):
        return set(value)
    return None


def _step_names(steps: Any) -> list[str] | None:
    if not isinstance(steps, list):
        return None
    names = [s.get("name") if isinstance(s, dict) else None for s in steps]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return None
    return [str(n) for n in names]


def _calls(step: Any) -> str:
    target = _target_of(step, _STEP_TARGETS)
    return f" (calls {_describe_target(target)})" if target else ""


def _names(noun: str) -> Handler:
    """Lists of references by name (tools, delegates, guardrails): members added and removed."""

    def handler(differ: _Differ, parts: Parts, label: str, old: Any, new: Any) -> None:
        old_names, new_names = _unique_scalars(old), _unique_scalars(new)
        if old_names is None or new_names is None or not all(isinstance(v, str) for v in (*old, *new)):
            differ.generic(parts, label, old, new)
            return
        differ.scalar_set(parts, label, old, new, old_names, new_names, noun=noun)

    return handler


_TOOL_NAMES = _names("tool")
_GUARDRAIL_NAMES = _names("guardrail")
_DELEGATE_NAMES = _names("delegate")

_AGENT_HANDLERS: dict[Parts, Handler] = {
    ("instructions",): _Differ.text,
    ("model",): _Differ.model,
    ("tools",): _TOOL_NAMES,
    ("delegates",): _DELEGATE_NAMES,
    ("guardrails",): _GUARDRAIL_NAMES,
    ("inputs",): _Differ.input_schema,
    ("output",): _Differ.output_schema,
}
_PIPELINE_HANDLERS: dict[Parts, Handler] = {
    ("steps",): _Differ.steps,
    ("guardrails",): _GUARDRAIL_NAMES,
    ("inputs",): _Differ.input_schema,
    ("output",): _Differ.output_schema,
}
_TOOL_HANDLERS: dict[Parts, Handler] = {
    ("description",): _Differ.text,
    ("guardrails",): _GUARDRAIL_NAMES,
    ("input_schema",): _Differ.input_schema,
    ("output_schema",): _Differ.output_schema,
}
_GUARDRAIL_HANDLERS: dict[Parts, Handler] = {
    ("tools",): _TOOL_NAMES,
    ("schema",): _Differ.output_schema,
}


# --- entry points -------------------------------------------------------------------------------


def _sort_key(change: Change) -> tuple[int, str, str, str]:
    return (_CATEGORY_RANK.get(change.category, len(CATEGORIES)), change.path, change.op, change.summary)


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> SpecDiff:
    """The semantic diff between two snapshots (see `snapshot_of`) of the same kind and name."""
    kind, name = old.get("kind"), old.get("name")
    if kind != new.get("kind") or name != new.get("name"):
        raise ValueError(
            f"diff_specs compares two versions of one spec, got {kind}/{name} and "
            f"{new.get('kind')}/{new.get('name')}"
        )
    differ = _Differ(str(kind))
    for key in sorted((set(old) | set(new)) - {"kind", "name"}):
        label = "" if key == "spec" else key
        if key not in new:
            differ.emit((key,), "removed", old[key], None, f"{key} removed (was {_fmt(old[key])})")
        elif key not in old:
            differ.emit((key,), "added", None, new[key], f"{key} added: {_fmt(new[key])}")
        elif key == "spec" and not (isinstance(old[key], dict) and isinstance(new[key], dict)):
            differ.generic((key,), "spec", old[key], new[key])
        elif key in ("labels", "annotations") and isinstance(old[key], dict) and isinstance(new[key], dict):
            differ.metadata_map((key,), key[:-1], old[key], new[key])
        else:
            differ.diff((key,), label, old[key], new[key])
    return SpecDiff(kind=str(kind), name=str(name), changes=sorted(differ.changes, key=_sort_key))


def _ordered(diffs: SpecDiff | Iterable[SpecDiff]) -> list[SpecDiff]:
    items = [diffs] if isinstance(diffs, SpecDiff) else list(diffs)

    def key(d: SpecDiff) -> tuple[int, str, str]:
        rank = _KIND_ORDER.index(d.kind) if d.kind in _KIND_ORDER else len(_KIND_ORDER)
        return (rank, d.kind, d.name)

    return sorted(items, key=key)


def render_text(diffs: SpecDiff | Iterable[SpecDiff], *, indent: int = 4) -> str:
    """Plain text for a terminal: one block per spec (by kind, then name), one line per change
    marked `~` changed, `+` added, `-` removed; text changes followed by their unified diff."""
    pad = " " * indent
    out: list[str] = []
    for diff in _ordered(diffs):
        if diff.empty:
            out.append(f"~ {diff.kind}/{diff.name}: no changes")
            continue
        count = len(diff.changes)
        breaking = sum(1 for c in diff.changes if c.breaking)
        extra = f", {breaking} breaking" if breaking else ""
        out.append(f"~ {diff.kind}/{diff.name} ({count} change{'s' if count != 1 else ''}{extra})")
        for change in diff.changes:
            out.append(f"{pad}{change.marker} {change.summary}")
            out.extend(f"{pad * 2}{line}".rstrip() for line in change.lines)
    return "\n".join(out) + ("\n" if out else "")


def to_json(diffs: SpecDiff | Iterable[SpecDiff]) -> list[dict[str, Any]]:
    """JSON-ready form of the diffs (for `--output json`), in the same order as `render_text`."""
    return [d.to_json() for d in _ordered(diffs)]


__all__ = [
    "CATEGORIES",
    "Change",
    "SpecDiff",
    "diff_specs",
    "format_path",
    "render_text",
    "snapshot_of",
    "to_json",
]
