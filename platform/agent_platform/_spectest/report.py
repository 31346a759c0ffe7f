"""A suite's results for people (text) and for CI (JUnit XML); `SuiteResult.to_json()` is the data
behind `-o json` and `-o yaml`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from agent_platform._spectest.runner import SpecTestResult, Status, SuiteResult

_LABELS = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.ERROR: "ERROR"}


def problem_lines(result: SpecTestResult) -> list[str]:
    """`file:line:col: Test/name: message` for each problem, as `validate` prints its errors."""
    return [f"{problem.location}: Test/{result.test.name}: {problem.message}" for problem in result.problems]


def result_line(result: SpecTestResult) -> str:
    return (
        f"{_LABELS[result.status]:<5} {result.test.name}  ({result.test.test.unit}, {result.duration_s:.2f}s)"
    )


def summary(suite: SuiteResult) -> str:
    parts = [f"{suite.count(Status.PASSED)} passed"]
    if suite.count(Status.FAILED):
        parts.append(f"{suite.count(Status.FAILED)} failed")
    if suite.count(Status.ERROR):
        parts.append(f"{suite.count(Status.ERROR)} error{'s' if suite.count(Status.ERROR) != 1 else ''}")
    total = len(suite.results)
    return f"{total} test{'s' if total != 1 else ''}: {', '.join(parts)} in {suite.duration_s:.2f}s"


def text(suite: SuiteResult) -> str:
    lines: list[str] = []
    for result in suite.results:
        lines.append(result_line(result))
        if result.status is not Status.PASSED:
            lines.extend("  " + line for line in problem_lines(result))
            run = result.run
            if run is not None and run.get("error") and result.status is Status.FAILED:
                lines.append(f"  the run ended {run.get('outcome')}: {run['error']}")
    lines.append(summary(suite))
    return "\n".join(lines)


def junit_xml(suite: SuiteResult) -> str:
    """One <testsuite> per file, one <testcase> per Test: a failed expectation is a <failure>, a
    test that could not run an <error>; messages carry file:line."""
    by_file: dict[str, list[SpecTestResult]] = defaultdict(list)
    for result in suite.results:
        by_file[result.test.file].append(result)
    root = ET.Element(
        "testsuites",
        name="platform test",
        tests=str(len(suite.results)),
        failures=str(suite.count(Status.FAILED)),
        errors=str(suite.count(Status.ERROR)),
        time=f"{suite.duration_s:.3f}",
    )
    for file, results in by_file.items():
        element = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(results)),
            failures=str(sum(r.status is Status.FAILED for r in results)),
            errors=str(sum(r.status is Status.ERROR for r in results)),
            time=f"{sum(r.duration_s for r in results):.3f}",
        )
        for result in results:
            case = ET.SubElement(
                element,
                "testcase",
                classname=_classname(file),
                name=result.test.name,
                file=file,
                line=str(result.test.location.line),
                time=f"{result.duration_s:.3f}",
            )
            if result.status is Status.PASSED:
                continue
            lines = problem_lines(result)
            tag = "failure" if result.status is Status.FAILED else "error"
            outcome = ET.SubElement(case, tag, message=lines[0] if lines else tag, type=tag)
            outcome.text = "\n".join(lines)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(file: str) -> str:
    """`specs/tests/support.yaml` -> `specs.tests.support`: CI tools group test cases by it."""
    return ".".join(Path(file).with_suffix("").parts)
