"""An eval's report (the data behind `-o json|yaml` and `--report`), its comparison with a
previous report (`--baseline`), and the text for people."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agent_platform._evals.runner import CaseResult

REPORT_KIND = "platform-eval-report"
REPORT_VERSION = 1
# Metrics compared with a baseline: (name, where in the summary, whether higher is better).
METRICS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("pass_rate", ("pass_rate",), True),
    ("cost_usd", ("cost_usd",), False),
    ("total_tokens", ("tokens", "total"), False),
    ("latency_p50_s", ("latency_s", "p50"), False),
    ("latency_p95_s", ("latency_s", "p95"), False),
)


class NotAReport(ValueError):
    """A --baseline file that is not an eval report."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between the closest ranks; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarise(results: Sequence[CaseResult]) -> dict[str, Any]:
    cases = [result.to_json() for result in results]
    total = len(cases)
    passed = sum(1 for c in cases if c["status"] == "passed")
    failed = sum(1 for c in cases if c["status"] == "failed")
    ran = [c["latency_s"] for c in cases if c["status"] != "error"]
    tokens_in = sum(c["input_tokens"] for c in cases)
    tokens_out = sum(c["output_tokens"] for c in cases)
    judge_in = sum(r.judge_usage.input_tokens for r in results)
    judge_out = sum(r.judge_usage.output_tokens for r in results)
    judge_cost = sum(r.judge_cost_usd for r in results)
    run_cost = sum(c["cost_usd"] for c in cases)
    scorers: dict[str, dict[str, Any]] = {}
    for result in results:
        for score in result.scores:
            entry = scorers.setdefault(score.scorer, {"passed": 0, "failed": 0})
            entry["passed" if score.passed else "failed"] += 1
    for entry in scorers.values():
        entry["pass_rate"] = round(entry["passed"] / (entry["passed"] + entry["failed"]), 4)
    outcomes: dict[str, int] = {}
    for c in cases:
        key = str(c["outcome"]) if c["outcome"] is not None else "not run"
        outcomes[key] = outcomes.get(key, 0) + 1
    return {
        "cases": total,
        "passed": passed,
        "failed": failed,
        "errors": total - passed - failed,
        "pass_rate": round(passed / total, 4) if total else 0.0,
        "outcomes": outcomes,
        "tokens": {"input": tokens_in, "output": tokens_out, "total": tokens_in + tokens_out},
        "cost_usd": round(run_cost, 6),
        "judge": {
            "input_tokens": judge_in,
            "output_tokens": judge_out,
            "total_tokens": judge_in + judge_out,
            "cost_usd": round(judge_cost, 6),
        },
        "total_cost_usd": round(run_cost + judge_cost, 6),
        "latency_s": {
            "p50": _rounded(percentile(ran, 0.5)),
            "p95": _rounded(percentile(ran, 0.95)),
            "mean": _rounded(sum(ran) / len(ran)) if ran else None,
            "max": _rounded(max(ran)) if ran else None,
        },
        "scorers": scorers,
    }


def build_report(
    unit: str, dataset: str, model: str | None, results: Sequence[CaseResult], duration_s: float
) -> dict[str, Any]:
    return {
        "kind": REPORT_KIND,
        "version": REPORT_VERSION,
        "unit": unit,
        "dataset": dataset,
        "model": model,
        "duration_s": round(duration_s, 3),
        "summary": summarise(results),
        "cases": [result.to_json() for result in results],
    }


def check_report(data: Any) -> dict[str, Any]:
    """`data` if it is an eval report this version can compare with, else NotAReport."""
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise NotAReport(f'not an eval report (no "kind": "{REPORT_KIND}")')
    if data.get("version") != REPORT_VERSION:
        raise NotAReport(
            f"an eval report of version {data.get('version')!r}; this platform reads {REPORT_VERSION}"
        )
    if not isinstance(data.get("summary"), dict) or not isinstance(data.get("cases"), list):
        raise NotAReport("an eval report without its summary or cases")
    return data


def _metric(summary: dict[str, Any], where: tuple[str, ...]) -> float | None:
    value: Any = summary
    for key in where:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def compare(report: dict[str, Any], baseline: dict[str, Any], tolerance: float = 0.2) -> dict[str, Any]:
    """What changed since `baseline`. `regressions` (cases that passed and no longer do, a lower
    pass rate) fail the command; `worse` lists cost, tokens and latency that grew by more than
    `tolerance` (relative), reported without failing it: timings vary between machines."""
    before = {str(c.get("id")): c for c in baseline["cases"] if isinstance(c, dict)}
    now = {str(c["id"]): c for c in report["cases"]}
    regressed = sorted(
        i
        for i, c in now.items()
        if i in before and before[i].get("status") == "passed" and c["status"] != "passed"
    )
    fixed = sorted(
        i
        for i, c in now.items()
        if i in before and before[i].get("status") != "passed" and c["status"] == "passed"
    )
    metrics: dict[str, dict[str, Any]] = {}
    regressions: list[str] = [f"case {i}: passed in the baseline, {now[i]['status']} now" for i in regressed]
    worse: list[str] = []
    for name, where, higher_is_better in METRICS:
        old, new = _metric(baseline["summary"], where), _metric(report["summary"], where)
        if old is None or new is None:
            continue
        change = new - old
        relative = change / old if old else (math.inf if change else 0.0)
        metrics[name] = {
            "baseline": old,
            "current": new,
            "change": round(change, 6),
            "relative": None if math.isinf(relative) else round(relative, 4),
        }
        if higher_is_better and change < 0:
            regressions.append(f"{name} {old:g} -> {new:g}")
        elif not higher_is_better and change > 0 and relative > tolerance:
            shown = "new" if math.isinf(relative) else f"+{relative:.0%}"
            worse.append(f"{name} {old:g} -> {new:g} ({shown})")
    notes = []
    if baseline.get("unit") != report["unit"]:
        notes.append(f"the baseline evaluated {baseline.get('unit')!r}, not {report['unit']!r}")
    if baseline.get("dataset") != report["dataset"]:
        notes.append(f"the baseline's dataset was {baseline.get('dataset')!r}")
    return {
        "regressions": regressions,
        "worse": worse,
        "fixed": fixed,
        "new_cases": sorted(set(now) - set(before)),
        "missing_cases": sorted(set(before) - set(now)),
        "metrics": metrics,
        "notes": notes,
    }


_LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}


def _money(value: float) -> str:
    return f"${value:.4f}" if value < 100 else f"${value:,.2f}"


def text(report: dict[str, Any]) -> str:
    lines: list[str] = []
    dataset = report["dataset"]
    for case in report["cases"]:
        lines.append(
            f"{_LABELS[case['status']]:<5} {case['id']}  ({case['outcome'] or 'not run'}, {case['latency_s']:.2f}s)"
        )
        where = f"{dataset}:{case['line']}"
        if case["status"] == "error":
            lines.append(f"  {where}: {case.get('error')}")
        for score in case["scores"]:
            if not score["passed"]:
                lines.append(
                    f"  {where}: {score['scorer']}: expected {score['expected']}, got {score['actual']}"
                )
    s = report["summary"]
    latency = s["latency_s"]
    lines.append(
        f"{s['cases']} case{'s' if s['cases'] != 1 else ''} of {report['unit']}: {s['passed']} passed, "
        f"{s['failed']} failed, {s['errors']} error{'s' if s['errors'] != 1 else ''} "
        f"(pass rate {s['pass_rate']:.1%}) in {report['duration_s']:.2f}s"
    )
    if latency["p50"] is not None:
        lines.append(
            f"latency p50 {latency['p50']:.3f}s, p95 {latency['p95']:.3f}s, max {latency['max']:.3f}s"
        )
    tokens = s["tokens"]
    lines.append(
        f"tokens {tokens['input']:,} in / {tokens['output']:,} out, cost {_money(s['cost_usd'])}"
        + (
            f"; judge {s['judge']['total_tokens']:,} tokens, {_money(s['judge']['cost_usd'])}"
            if s["judge"]["total_tokens"]
            else ""
        )
    )
    if len(s["scorers"]) > 1:
        lines.append(
            "scorers: "
            + ", ".join(
                f"{name} {entry['passed']}/{entry['passed'] + entry['failed']}"
                for name, entry in s["scorers"].items()
            )
        )
    comparison = report.get("baseline")
    if comparison:
        lines.append(f"against the baseline {comparison['file']}:")
        for note in comparison["notes"]:
            lines.append(f"  note: {note}")
        for item in comparison["regressions"]:
            lines.append(f"  REGRESSION {item}")
        for item in comparison["worse"]:
            lines.append(f"  worse      {item}")
        if comparison["fixed"]:
            lines.append(f"  fixed      {', '.join(comparison['fixed'])}")
        if comparison["new_cases"] or comparison["missing_cases"]:
            lines.append(
                f"  cases      {len(comparison['new_cases'])} new, {len(comparison['missing_cases'])} not in this run"
            )
        if not comparison["regressions"] and not comparison["worse"]:
            lines.append("  no regression")
    return "\n".join(lines)
