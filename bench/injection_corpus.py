"""The labelled prompt-injection corpus (`bench/data/injection/`): loading, the frozen held-out
split's checksum, and the figures a detector is judged by.

Two splits, written by hand for this project in the styles of public benchmarks (see
`bench/data/injection/README.md`): `dev`, which pattern changes may be tuned on, and `heldout`,
which they never are. The held-out file is frozen: `HELDOUT_SHA256` is its checksum, and the
benchmark and the tests refuse a file that does not match, so any change to it is visible."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).resolve().parent / "data" / "injection"
SPLITS = ("dev", "heldout")
Split = Literal["dev", "heldout"]
Label = Literal["injection", "benign"]

# The held-out split as written on 2026-11-27, before any pattern was looked at against it.
HELDOUT_SHA256 = "a638a367ddcabe33ed22a245fdf5cf2d7a53f0d6c25aefd815ea9f9a855cfc7d"

CARRIERS = frozenset({"email", "web_page", "table", "tool_json", "review", "document", "code", "user_prompt"})
STYLES = frozenset({"bipia", "injecagent", "agentdojo", "llmail", "tensor_trust", "deepset", "original"})


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text. `payload` groups the injections that carry the same planted text (in
    different carriers); `goal` is what the injection wants (None for benign texts); `tags`
    describe benign look-alikes (`quotes_attack`, `imperative`, `mentions_ai`, `payment`, ...)."""

    id: str
    split: Split
    label: Label
    carrier: str
    style: str
    goal: str | None
    payload: str | None
    tags: tuple[str, ...]
    text: str

    @property
    def is_injection(self) -> bool:
        return self.label == "injection"


class CorpusError(ValueError):
    """A corpus file is malformed, or the held-out split is not the frozen one."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_split(split: Split, directory: Path = DATA_DIR, *, verify: bool = True) -> list[Example]:
    """The examples of one split. With `verify`, the held-out file must match `HELDOUT_SHA256`."""
    path = directory / f"{split}.jsonl"
    if verify and split == "heldout":
        actual = sha256_of(path)
        if actual != HELDOUT_SHA256:
            raise CorpusError(
                f"{path} changed: sha256 {actual}, frozen {HELDOUT_SHA256}. The held-out split is never "
                "edited; add new examples to a new split instead."
            )
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict) or not isinstance(raw.get("tags"), list):
                raise TypeError("a JSON object with a list of tags")
            example = Example(
                id=raw["id"],
                split=raw["split"],
                label=raw["label"],
                carrier=raw["carrier"],
                style=raw["style"],
                goal=raw["goal"],
                payload=raw["payload"],
                tags=tuple(raw["tags"]),
                text=raw["text"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorpusError(f"{path}:{number}: not a corpus record ({exc})") from None
        problems = _problems(example, split)
        if problems:
            raise CorpusError(f"{path}:{number}: {'; '.join(problems)}")
        examples.append(example)
    return examples


def _problems(example: Example, split: Split) -> list[str]:
    for name in ("id", "split", "label", "carrier", "style", "text"):
        if not isinstance(getattr(example, name), str):
            return [f"{name} must be a string"]
    for name in ("goal", "payload"):
        if getattr(example, name) is not None and not isinstance(getattr(example, name), str):
            return [f"{name} must be a string or null"]
    if not all(isinstance(tag, str) for tag in example.tags):
        return ["tags must be strings"]
    problems = []
    if example.split != split:
        problems.append(f"split {example.split!r} in the {split} file")
    if example.label not in ("injection", "benign"):
        problems.append(f"label {example.label!r}")
    if example.carrier not in CARRIERS:
        problems.append(f"carrier {example.carrier!r}")
    if example.style not in STYLES:
        problems.append(f"style {example.style!r}")
    if example.is_injection and (not example.goal or not example.payload):
        problems.append("an injection needs its goal and payload")
    if not example.is_injection and (example.goal is not None or example.payload is not None):
        problems.append("a benign text has no goal or payload")
    if not example.text.strip():
        problems.append("empty text")
    return problems


# --- figures -----------------------------------------------------------------------------------


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion: honest for small counts and
    for proportions near 0 or 1, where the normal approximation is not."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(slots=True)
class Scores:
    """A detector's results on one split: true-positive rate over the injections, false-positive
    rate over the benign texts, and the same by style / carrier / payload."""

    split: str
    detector: str
    true_positives: list[Example] = field(default_factory=list)
    misses: list[Example] = field(default_factory=list)
    false_positives: list[Example] = field(default_factory=list)
    true_negatives: list[Example] = field(default_factory=list)

    @property
    def injections(self) -> int:
        return len(self.true_positives) + len(self.misses)

    @property
    def benign(self) -> int:
        return len(self.false_positives) + len(self.true_negatives)

    @property
    def tpr(self) -> float:
        return len(self.true_positives) / self.injections if self.injections else 0.0

    @property
    def fpr(self) -> float:
        return len(self.false_positives) / self.benign if self.benign else 0.0

    def tpr_interval(self) -> tuple[float, float]:
        return wilson(len(self.true_positives), self.injections)

    def fpr_interval(self) -> tuple[float, float]:
        return wilson(len(self.false_positives), self.benign)

    def payload_tpr(self) -> tuple[int, int]:
        """(payloads detected in every carrier they were planted in, payloads)."""
        caught: dict[str, bool] = {}
        for example in self.true_positives:
            caught.setdefault(example.payload or example.id, True)
        for example in self.misses:
            caught[example.payload or example.id] = False
        return sum(caught.values()), len(caught)

    def tpr_by(self, key: Callable[[Example], str]) -> dict[str, tuple[int, int]]:
        """(detected, injections) per value of `key` over the injections."""
        table: dict[str, list[int]] = {}
        for example in self.true_positives:
            table.setdefault(key(example), [0, 0])[0] += 1
        for example in [*self.true_positives, *self.misses]:
            table.setdefault(key(example), [0, 0])[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(table.items())}

    def fpr_by(self, key: Callable[[Example], Iterable[str]]) -> dict[str, tuple[int, int]]:
        """(flagged, benign texts) per value of `key` (several values per text allowed)."""
        table: dict[str, list[int]] = {}
        for example in self.false_positives:
            for value in key(example):
                table.setdefault(value, [0, 0])[0] += 1
        for example in [*self.false_positives, *self.true_negatives]:
            for value in key(example):
                table.setdefault(value, [0, 0])[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(table.items())}


def score(detector: str, split: str, examples: Sequence[Example], flagged: Sequence[bool]) -> Scores:
    """Scores from one boolean decision per example (True: the detector flagged it)."""
    if len(examples) != len(flagged):
        raise ValueError("one decision per example")
    scores = Scores(split, detector)
    for example, hit in zip(examples, flagged, strict=True):
        if example.is_injection:
            (scores.true_positives if hit else scores.misses).append(example)
        else:
            (scores.false_positives if hit else scores.true_negatives).append(example)
    return scores
