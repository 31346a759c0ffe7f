"""Loop detection keyed on *what the agent does*: the tool (or delegate) plus its canonical
arguments — never the action's label or the model's "thought" text.

An agent that searches three different queries makes three different actions and is not a loop;
the same search issued three times under three different labels is. The detector keeps the last
`window` actions of the run and trips when the action just proposed has occurred `threshold` times
in that window. That covers:

* a repeat: A A A;
* a short cycle: A B A B A … (length ≤ `max_cycle_length`): the cycle's first action recurs
  `threshold` times by its `threshold`-th round, so a cycle repeating `threshold` times always trips;
* a recurrence: A x A y A — the same action coming back among different ones.

The verdict names the pattern (`repeat`, `cycle` with its steps, or `recurrence`) and the tools.
The final answer is not an action for this purpose."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from agent_platform._runtime.guardrails.base import GuardContext, Guardrail, Stage, Verdict
from agent_platform._spec.kinds import LoopDetectionGuardrail

# --- canonical arguments ----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """`value` as plain JSON data with a single spelling per meaning: mappings with string keys
    (serialised sorted), sequences as lists, sets sorted, integral floats as ints, and non-JSON
    types (bytes, dates, enums, dataclasses, pydantic models, decimals) in a tagged stable form."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return {"$float": "nan"}
        if math.isinf(value):
            return {"$float": "inf" if value > 0 else "-inf"}
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [_plain(v) for v in value]
        return {"$set": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return {"$repr": f"{type(value).__qualname__}:{value}"}


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    return json.dumps(_plain(key), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """One string per meaning for any JSON-able value (and common non-JSON ones): sorted keys,
    no insignificant whitespace, `1.0` == `1`, tuples == lists. Two argument sets that mean the
    same give the same string."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def action_key(tool: str, args: Any) -> str:
    """A short stable key for an action: tool name + a digest of its canonical arguments."""
    digest = hashlib.blake2b(canonical_json(args).encode("utf-8"), digest_size=12).hexdigest()
    return f"{tool}#{digest}"


# --- the detector -----------------------------------------------------------------------------


class LoopDetector(Guardrail):
    """Per-run state: the last `window` action keys. Use `fresh()` for each run."""

    type = "loop_detection"

    __slots__ = ("_history", "max_cycle_length", "threshold", "window")

    def __init__(
        self,
        name: str,
        *,
        window: int = 12,
        threshold: int = 3,
        max_cycle_length: int = 3,
        action: str = "halt",
        stages: tuple[Stage, ...] = ("action",),
    ) -> None:
        super().__init__(name, stages, action)
        if window < 2 or threshold < 2 or max_cycle_length < 1:
            raise ValueError("loop detection needs window >= 2, threshold >= 2, max_cycle_length >= 1")
        self.window = window
        self.threshold = threshold
        self.max_cycle_length = max_cycle_length
        self._history: deque[str] = deque(maxlen=window)

    @classmethod
    def from_spec(cls, name: str, spec: LoopDetectionGuardrail) -> LoopDetector:
        return cls(
            name,
            window=spec.window,
            threshold=spec.threshold,
            max_cycle_length=spec.max_cycle_length,
            action=spec.action,
            stages=tuple(spec.applies_to),
        )

    def check(self, context: GuardContext) -> Verdict:
        if context.tool_name is None or context.action_kind == "final_answer":
            return self._allow
        prefix = "delegate:" if context.action_kind == "delegate" else ""
        key = action_key(prefix + context.tool_name, context.tool_args or {})
        return self.record(key)

    def record(self, key: str) -> Verdict:
        """Add an action key to the window and judge it (exposed for tests and replays)."""
        history = self._history
        history.append(key)
        occurrences = history.count(key)
        if occurrences < self.threshold:
            return self._allow
        return self._verdict(key, occurrences)

    def _verdict(self, key: str, occurrences: int) -> Verdict:
        history = list(self._history)
        # The span from the threshold-th last occurrence of `key` to now shows the pattern.
        positions = [i for i, k in enumerate(history) if k == key]
        tail = history[positions[-self.threshold] :]
        period = next(
            (
                length
                for length in range(1, min(self.max_cycle_length, len(tail) - 1) + 1)
                if all(tail[i] == tail[i - length] for i in range(length, len(tail)))
            ),
            None,
        )
        tool = _tool_of(key)
        if period == 1:
            pattern, steps = "repeat", [tool]
            reason = (
                f"the same action ({tool} with identical arguments) repeated {occurrences} times in a row"
            )
        elif period is not None:
            pattern, steps = "cycle", [_tool_of(k) for k in tail[:period]]
            rounds = len(tail) / period
            reason = (
                f"a cycle of {period} actions ({' -> '.join(steps)}, identical arguments) "
                f"repeated {rounds:g} times"
            )
        else:
            pattern, steps = "recurrence", [tool]
            reason = (
                f"the same action ({tool} with identical arguments) occurred {occurrences} times "
                f"in the last {len(history)} actions"
            )
        return self.violation(
            f"loop detected: {reason}",
            pattern=pattern,
            steps=tuple(steps),
            occurrences=occurrences,
            window=self.window,
            threshold=self.threshold,
        )

    @property
    def history(self) -> list[str]:
        return list(self._history)

    def fresh(self) -> LoopDetector:
        return LoopDetector(
            self.name,
            window=self.window,
            threshold=self.threshold,
            max_cycle_length=self.max_cycle_length,
            action=self.action.label,
            stages=self.stages,
        )

    def snapshot(self) -> list[str]:
        return list(self._history)

    def restore(self, state: Any) -> None:
        self._history.clear()
        if state:
            self._history.extend(str(k) for k in state)

    def reset(self) -> None:
        self._history.clear()


def _tool_of(key: str) -> str:
    return key.rpartition("#")[0]
