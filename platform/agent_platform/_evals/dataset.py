"""An eval dataset: a JSON Lines file of cases, each a unit's inputs and how to score its run.

    {"scorers": [{"name": "has-summary", "path": "$.summary", "matches": "\\\\S"}]}     <- optional header
    {"id": "paris", "inputs": {"q": "capital of France?"}, "scorers": [{"path": "$.city", "equals": "Paris"}]}
    {"id": "judge", "inputs": {...}, "reference": "...", "scorers": [{"judge": {"model": "judge", "criteria": "..."}}]}

The first line may be a header holding only `scorers`: they score every case, before each case's
own. A case holds `inputs` and optionally `id` (default: `line-N`), `outcome` (how its run must
end; default `completed`), `scorers` and `reference` (a reference answer the judge is shown).
A scorer is a check on one value of the output, written as in a Test's `expect.output` (`path`
plus one of `equals`, `matches`, `schema`: exact, JSON-path, regex and schema scoring), or
`judge`: a Model grades the value against `criteria` with a score from 0 to 1. Each may have a
`name` (default: what it checks). Every problem is reported at its line, and all of them at
once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from agent_platform._spec.common import NonEmptyStr, SpecModel
from agent_platform._spec.kinds import JsonPathText, ModelRef, RunOutcome, ValueCheck

MAX_LINE_CHARS = 1_000_000
MAX_CASES = 100_000


class CheckScorer(ValueCheck):
    """A value check on the run's output (`path`, then `equals`, `matches` or `schema`)."""

    name: NonEmptyStr | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"{self.operator} {self.path}"


class JudgeSpec(SpecModel):
    """A Model that grades one value of the output against written criteria."""

    model: ModelRef = Field(description="The judging Model: a name among the specs, or inline.")
    criteria: NonEmptyStr = Field(description="What a good answer does, in words the judge is shown.")
    path: JsonPathText = Field(default="$", description="Which value of the output is judged.")
    min_score: float = Field(default=0.5, ge=0, le=1, description="The score (0 to 1) that passes.")


class JudgeScorer(SpecModel):
    name: NonEmptyStr | None = None
    judge: JudgeSpec

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        model = self.judge.model if isinstance(self.judge.model, str) else "inline model"
        return f"judge {self.judge.path} by {model}"


Scorer = CheckScorer | JudgeScorer


class CaseLine(SpecModel):
    id: NonEmptyStr | None = None
    inputs: dict[str, Any]
    outcome: RunOutcome = "completed"
    scorers: list[dict[str, Any]] = Field(default_factory=list)
    reference: Any = None


class HeaderLine(SpecModel):
    scorers: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class DatasetError:
    """A problem in the dataset file, at a line (1-based) and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    line: int
    inputs: dict[str, Any]
    outcome: str
    scorers: tuple[Scorer, ...]
    reference: Any = None


@dataclass
class Dataset:
    path: str
    cases: list[Case] = field(default_factory=list)
    header_scorers: tuple[Scorer, ...] = ()
    errors: list[DatasetError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def judge_models(self) -> list[tuple[Case | None, JudgeScorer]]:
        found: list[tuple[Case | None, JudgeScorer]] = [
            (None, s) for s in self.header_scorers if isinstance(s, JudgeScorer)
        ]
        for case in self.cases:
            own = case.scorers[len(self.header_scorers) :]
            found += [(case, s) for s in own if isinstance(s, JudgeScorer)]
        return found


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _messages(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
        where = _where((prefix, *loc) if prefix else loc)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(f"{where}: {message}" if where else message)
    return out


def parse_scorer(raw: Any) -> Scorer:
    """A scorer from its JSON object (raises ValidationError or ValueError)."""
    if not isinstance(raw, dict):
        raise ValueError(f"a scorer is an object, not {type(raw).__name__}")
    if "judge" in raw:
        return JudgeScorer.model_validate(raw)
    return CheckScorer.model_validate(raw)


def _scorers(raw: list[dict[str, Any]], prefix: str, report: Any) -> tuple[Scorer, ...]:
    parsed: list[Scorer] = []
    for index, item in enumerate(raw):
        try:
            parsed.append(parse_scorer(item))
        except ValidationError as exc:
            for message in _messages(exc, f"{prefix}[{index}]"):
                report(message)
        except ValueError as exc:
            report(f"{prefix}[{index}]: {exc}")
    return tuple(parsed)


def load_dataset(path: Path) -> Dataset:
    """The dataset at `path` with every problem found (`Dataset.errors`); raises OSError when the
    file cannot be read."""
    text = path.read_text(encoding="utf-8")
    dataset = Dataset(str(path))
    seen_ids: dict[str, int] = {}
    first = True
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue

        def report(message: str, column: int = 1, number: int = number) -> None:
            dataset.errors.append(DatasetError(str(path), number, column, message))

        if len(line) > MAX_LINE_CHARS:
            report(f"the line is longer than {MAX_LINE_CHARS:,} characters")
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            report(f"invalid JSON: {exc.msg}", exc.colno)
            continue
        except RecursionError:
            report("invalid JSON: nested too deeply")
            continue
        if not isinstance(data, dict):
            report(f"each line is a JSON object (a case), not {type(data).__name__}")
            continue
        header = first and "inputs" not in data
        first = False
        if header:
            try:
                head = HeaderLine.model_validate(data)
            except ValidationError as exc:
                for message in _messages(exc, ""):
                    report(f"header: {message} (a first line without `inputs` holds only `scorers`)")
                continue
            dataset.header_scorers = _scorers(head.scorers, "scorers", report)
            continue
        try:
            case = CaseLine.model_validate(data)
        except ValidationError as exc:
            for message in _messages(exc, ""):
                report(message)
            continue
        own = _scorers(case.scorers, "scorers", report)
        ident = case.id or f"line-{number}"
        if ident in seen_ids:
            report(f"id {ident!r} is already used on line {seen_ids[ident]}")
            continue
        seen_ids[ident] = number
        if len(dataset.cases) >= MAX_CASES:
            report(f"more than {MAX_CASES:,} cases")
            break
        dataset.cases.append(
            Case(ident, number, case.inputs, case.outcome, (*dataset.header_scorers, *own), case.reference)
        )
    if not dataset.cases and not dataset.errors:
        dataset.errors.append(
            DatasetError(str(path), 1, 1, "the dataset holds no case (a line with `inputs`)")
        )
    return dataset
