"""Running Tests: each in its own `RecordingRuntime` on one asyncio loop, at most `jobs` at a time,
sharing the long-term memory stores and embedders. A test passes when its run ends and every
expectation holds; it is an error when the run could not be made or finish (inputs the unit
rejects, the test's timeout, a bug)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent_platform._compile.plan import Plan, ResolvedModel
from agent_platform._diagnostics import SourceLocation
from agent_platform._memory.registry import MemoryRegistry
from agent_platform._runtime.engine import UnknownUnit
from agent_platform._runtime.inputs import InputError
from agent_platform._runtime.supervisor import TaskError
from agent_platform._spec.kinds import ModelSpec, TestDocument, TestSpec
from agent_platform._spectest.expect import Observation, evaluate
from agent_platform._spectest.observe import RecordingRuntime
from agent_platform._validate.documents import TypedSpec

Path_ = tuple[str | int, ...]


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the run ended and an expectation does not hold
    ERROR = "error"  # the run could not be made or did not finish


@dataclass(frozen=True, slots=True)
class Problem:
    """A failed expectation, or why the test could not run, at the line of the Test that says it."""

    location: SourceLocation
    message: str
    expectation: str = ""
    expected: str = ""
    actual: str = ""

    def to_json(self) -> dict[str, Any]:
        where = self.location
        data: dict[str, Any] = {"file": where.file, "line": where.line, "column": where.column}
        data["message"] = self.message
        if self.expectation:
            data.update(expectation=self.expectation, expected=self.expected, actual=self.actual)
        return data


@dataclass
class SpecTest:
    """A Test document and where it is written."""

    spec: TypedSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def test(self) -> TestSpec:
        assert isinstance(self.spec.model, TestDocument)
        return self.spec.model.spec

    @property
    def file(self) -> str:
        return self.spec.document.file

    @property
    def location(self) -> SourceLocation:
        return self.spec.locate("metadata", "name")

    def locate(self, path: Path_) -> SourceLocation:
        return self.spec.locate(*path)


@dataclass
class SpecTestResult:
    test: SpecTest
    status: Status
    duration_s: float
    problems: list[Problem] = field(default_factory=list)
    run: dict[str, Any] | None = None  # the run's result, as `platform run -o json` prints it

    def to_json(self) -> dict[str, Any]:
        where = self.test.location
        return {
            "name": self.test.name,
            "unit": self.test.test.unit,
            "file": where.file,
            "line": where.line,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 4),
            "problems": [problem.to_json() for problem in self.problems],
            "run": self.run,
        }


@dataclass
class SuiteResult:
    results: list[SpecTestResult]
    duration_s: float

    def count(self, status: Status) -> int:
        return sum(1 for result in self.results if result.status is status)

    @property
    def ok(self) -> bool:
        return all(result.status is Status.PASSED for result in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "tests": [result.to_json() for result in self.results],
            "summary": {
                "total": len(self.results),
                "passed": self.count(Status.PASSED),
                "failed": self.count(Status.FAILED),
                "errors": self.count(Status.ERROR),
                "duration_s": round(self.duration_s, 4),
            },
        }


def select(tests: Sequence[TypedSpec], substring: str | None) -> list[SpecTest]:
    """The tests whose name contains `substring` (all without one), in file and line order."""
    chosen = [SpecTest(spec) for spec in tests if substring is None or substring in spec.name]
    return sorted(chosen, key=lambda t: (t.location.file, t.location.line))


class SuiteRunner:
    def __init__(
        self,
        plan: Plan,
        *,
        plugin_paths: list[Path] | None = None,
        jobs: int = 8,
        on_done: Callable[[SpecTestResult], None] | None = None,
    ) -> None:
        self.plan = plan
        self.plugin_paths = plugin_paths
        self.jobs = jobs
        self.on_done = on_done

    async def run(self, tests: Sequence[SpecTest]) -> SuiteResult:
        started = time.perf_counter()
        memories = MemoryRegistry(self.plan.memories)  # one set of stores and embedders for all
        runtimes: list[RecordingRuntime] = []
        gate = asyncio.Semaphore(self.jobs)

        async def one(test: SpecTest) -> SpecTestResult:
            async with gate:
                begun = time.perf_counter()
                try:
                    runtime = RecordingRuntime(
                        self.plan,
                        model=self._model(test),
                        plugin_paths=self.plugin_paths,
                        approve_all=test.test.approve_all,
                        memories=memories,
                    )
                    runtimes.append(runtime)
                    result = await run_test(test, runtime)
                except Exception as exc:  # e.g. a tool plugin that fails to import: this test's error
                    problem = Problem(test.location, f"the test could not run: {type(exc).__name__}: {exc}")
                    result = SpecTestResult(test, Status.ERROR, time.perf_counter() - begun, [problem])
            if self.on_done is not None:
                self.on_done(result)
            return result

        try:
            results = await asyncio.gather(*(one(test) for test in tests))
        finally:
            # After every test: closing a runtime closes the memory registry they all share.
            for runtime in runtimes:
                await runtime.aclose()
            await memories.close()
        return SuiteResult(list(results), time.perf_counter() - started)

    def _model(self, test: SpecTest) -> ResolvedModel | None:
        model = test.test.model
        if model is None:
            return None
        if isinstance(model, ModelSpec):
            return ResolvedModel("<inline>", model, str(Path(test.file).parent))
        return self.plan.models[model]


async def run_test(test: SpecTest, runtime: RecordingRuntime) -> SpecTestResult:
    spec = test.test
    started = time.perf_counter()

    def error(path: Path_, message: str) -> SpecTestResult:
        problem = Problem(test.locate(path), message)
        return SpecTestResult(test, Status.ERROR, time.perf_counter() - started, [problem])

    try:
        async with asyncio.timeout(spec.timeout):
            result = await runtime.run(spec.unit, spec.inputs, tenant=spec.tenant)
    except UnknownUnit as exc:
        return error(("spec", "unit"), str(exc))
    except (InputError, TaskError) as exc:
        return error(("spec", "inputs"), f"the run was refused: {exc}")
    except TimeoutError:
        return error(
            ("spec", "timeout"), f"the run did not end within the test's timeout of {spec.timeout:g}s"
        )
    observed = Observation(result.to_json(), list(runtime.tool_calls), list(runtime.guardrail_events))
    failures = evaluate(spec, observed)
    problems = [
        Problem(test.locate(f.path), f.message, f.expectation, f.expected, f.actual) for f in failures
    ]
    status = Status.FAILED if problems else Status.PASSED
    return SpecTestResult(test, status, time.perf_counter() - started, problems, observed.result)
