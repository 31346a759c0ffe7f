"""`platform eval`: the dataset format and its located errors, scoring real runs of a unit with
the scripted model (a labelled test/demo stand-in), the report's figures, the comparison with a
baseline, and an LLM judge on the OpenAI provider against the strict local server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.openai_api import ChatCompletionsServer, tool_call
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._evals.dataset import CheckScorer, JudgeScorer, load_dataset
from agent_platform._evals.report import compare, percentile

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "evals" / "specs"
DATASET = ROOT / "examples" / "evals" / "top-result.jsonl"
KEY_ENV = "AP_TEST_JUDGE_KEY"
SECRET = "sk-judge-test-0123456789"


def platform(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def evaluate(dataset: Path, *extra: str) -> Any:
    return platform("eval", "top-result", "--specs", str(SPECS), "--dataset", str(dataset), *extra)


def write(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


# --- the dataset format ---------------------------------------------------------------------------


def test_the_example_dataset_loads_with_header_scorers_first() -> None:
    dataset = load_dataset(DATASET)
    assert dataset.ok, dataset.errors
    assert [case.id for case in dataset.cases] == ["idempotency", "backoff", "key-rotation", "rate-limits"]
    first = dataset.cases[0]
    assert first.line == 2
    assert [type(s) for s in first.scorers] == [CheckScorer, JudgeScorer, CheckScorer, CheckScorer]
    assert [s.label for s in first.scorers] == ["shape", "judge", "title", "url"]


def test_every_problem_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.jsonl",
        {"scorers": [{"path": "$.a", "matches": "("}]},
        '{"inputs": {"q": 1}, ',
        "[1, 2]",
        {"inputs": {}, "scorers": [{"path": "$.a", "equals": 1, "matches": "x"}]},
        {"inputs": {}, "expected": 3},
        {"id": "a", "inputs": {}},
        {"id": "a", "inputs": {}},
        {"inputs": {}, "scorers": [{"judge": {"model": "m"}}]},
        {"inputs": {}, "scorers": [{"path": "items", "equals": 1}]},
        {"inputs": {}, "outcome": "done"},
    )
    errors = load_dataset(path).errors
    found = [(e.line, e.column, e.message) for e in errors]
    assert [line for line, _, _ in found] == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    text = "\n".join(str(e) for e in errors)
    assert f"{path}:1:1: scorers[0].matches: invalid regular expression" in text
    assert f"{path}:2:22: invalid JSON" in text  # the column json.loads stopped at
    assert "each line is a JSON object (a case), not list" in text
    assert "scorers[0]: a check needs exactly one of equals, matches, schema (found: equals, matches)" in text
    assert "expected: Extra inputs are not permitted" in text
    assert f"{path}:7:1: id 'a' is already used on line 6" in text
    assert "scorers[0].judge.criteria: Field required" in text
    assert "scorers[0].path" in text and "outcome" in text


def test_an_empty_dataset_and_a_header_with_other_keys_are_errors(tmp_path: Path) -> None:
    assert "holds no case" in str(load_dataset(write(tmp_path / "empty.jsonl", "", "  ")).errors[0])
    header = load_dataset(write(tmp_path / "h.jsonl", {"scorers": [], "model": "x"}, {"inputs": {}}))
    assert any("header" in e.message and "model" in e.message for e in header.errors)


# --- figures and comparison ------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile(values, 0.95) == pytest.approx(9.55)
    assert percentile(list(reversed(values)), 0.0) == 1.0


def report(cases: dict[str, str], pass_rate: float, cost: float, p95: float) -> dict[str, Any]:
    return {
        "unit": "Pipeline/x",
        "dataset": "d.jsonl",
        "summary": {
            "pass_rate": pass_rate,
            "cost_usd": cost,
            "tokens": {"total": 100},
            "latency_s": {"p50": 1.0, "p95": p95},
        },
        "cases": [{"id": i, "status": s} for i, s in cases.items()],
    }


def test_compare_names_regressed_and_fixed_cases_and_worse_metrics() -> None:
    before = report({"a": "passed", "b": "failed", "c": "passed", "gone": "passed"}, 0.75, 0.10, 2.0)
    after = report({"a": "failed", "b": "passed", "c": "passed", "new": "error"}, 0.5, 0.13, 2.1)
    result = compare(after, before, tolerance=0.2)
    assert result["regressions"] == ["case a: passed in the baseline, failed now", "pass_rate 0.75 -> 0.5"]
    assert result["fixed"] == ["b"]
    assert result["worse"] == ["cost_usd 0.1 -> 0.13 (+30%)"]  # p95 +5% is within the tolerance
    assert result["new_cases"] == ["new"] and result["missing_cases"] == ["gone"]
    assert result["metrics"]["latency_p95_s"]["relative"] == pytest.approx(0.05)
    same = compare(before, before)
    assert same["regressions"] == [] and same["worse"] == []


# --- the command, on real runs with the scripted model -----------------------------------------------


def test_eval_reports_pass_rate_tokens_cost_and_latency(tmp_path: Path) -> None:
    saved = tmp_path / "report.json"
    result = evaluate(DATASET, "-o", "json", "--report", str(saved), "-j", "2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert json.loads(saved.read_text()) == data
    summary = data["summary"]
    assert (summary["cases"], summary["passed"], summary["pass_rate"]) == (4, 4, 1.0)
    cases = data["cases"]
    assert [c["status"] for c in cases] == ["passed"] * 4
    assert cases[0]["output"]["title"] == "Idempotency keys for side-effecting tools"
    assert summary["tokens"]["input"] == sum(c["input_tokens"] for c in cases) > 0
    assert summary["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in cases), abs=1e-6)
    # the scripted judge's usage (scripts/judge.jsonl), priced at $1/$5 per million tokens
    assert summary["judge"]["input_tokens"] == 180 + 176 + 178 + 174
    assert summary["judge"]["cost_usd"] == pytest.approx((708 * 1.0 + 84 * 5.0) / 1e6)
    latencies = sorted(c["latency_s"] for c in cases)
    assert latencies[0] <= summary["latency_s"]["p50"] <= summary["latency_s"]["p95"] <= latencies[-1]
    assert summary["scorers"]["title"] == {"passed": 4, "failed": 0, "pass_rate": 1.0}
    as_yaml = yaml.safe_load(evaluate(DATASET, "-o", "yaml").stdout)
    assert as_yaml["summary"]["pass_rate"] == 1.0


def test_a_failing_case_says_what_was_expected_and_where(tmp_path: Path) -> None:
    lines = DATASET.read_text().splitlines()
    lines[2] = lines[2].replace("Retries with exponential backoff and jitter", "Backoff")
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = evaluate(path)
    assert result.exit_code == 0, result.output  # an eval measures; --min-pass-rate or --baseline gate
    assert "FAIL  backoff" in result.stdout
    assert (
        f'{path}:3: title: expected "Backoff", got "Retries with exponential backoff and jitter"'
        in result.stdout
    )
    assert "3 passed, 1 failed, 0 errors (pass rate 75.0%)" in result.stdout
    gated = evaluate(path, "--min-pass-rate", "0.9")
    assert gated.exit_code == 1 and "under --min-pass-rate" in gated.stderr


def test_baseline_shows_regressions_and_fails(tmp_path: Path) -> None:
    baseline = tmp_path / "before.json"
    assert evaluate(DATASET, "--report", str(baseline)).exit_code == 0
    same = evaluate(DATASET, "--baseline", str(baseline))
    assert same.exit_code == 0, same.output
    assert "no regression" in same.stdout or "worse" in same.stdout  # timings may vary
    worse = tmp_path / "cases.jsonl"
    worse.write_text(DATASET.read_text().replace('"equals": 4', '"equals": 5'))
    result = evaluate(worse, "--baseline", str(baseline), "-o", "json")
    assert result.exit_code == 1
    comparison = json.loads(result.stdout)["baseline"]
    assert comparison["regressions"] == [
        "case rate-limits: passed in the baseline, failed now",
        "pass_rate 1 -> 0.75",
    ]
    assert comparison["file"] == str(baseline)


def test_bad_inputs_are_located_errors_with_the_cli_exit_codes(tmp_path: Path) -> None:
    unknown = platform("eval", "top-reslt", "--specs", str(SPECS), "--dataset", str(DATASET))
    assert unknown.exit_code == 2 and "no agent, pipeline or supervisor named 'top-reslt'" in unknown.stderr
    missing = evaluate(tmp_path / "nope.jsonl")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    broken = write(tmp_path / "broken.jsonl", {"inputs": {"query": "x"}}, '{"inputs": ')
    result = evaluate(broken)
    assert result.exit_code == 1 and f"{broken}:2:12: invalid JSON" in result.stderr
    assert "1 error in" in result.stderr and result.stdout == ""
    judge = write(
        tmp_path / "judge.jsonl",
        {"inputs": {"query": "x"}, "scorers": [{"judge": {"model": "demo-judg", "criteria": "good"}}]},
    )
    result = evaluate(judge)
    assert result.exit_code == 1
    assert f"{judge}:1:1: judge: no Model named 'demo-judg' (did you mean 'demo-judge'?)" in result.stderr
    not_report = write(tmp_path / "x.json", {"cases": []})
    result = evaluate(DATASET, "--baseline", str(not_report))
    assert result.exit_code == 2 and "not an eval report" in result.stderr
    model = evaluate(DATASET, "--model", "demo-modle")
    assert model.exit_code == 2 and "did you mean 'demo-model'" in model.stderr


def test_inputs_the_unit_refuses_make_that_case_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cases.jsonl",
        {"id": "no-query", "inputs": {"q": "x"}},
        {"inputs": {"query": "rate limits"}},
    )
    result = evaluate(path, "-o", "json")
    data = json.loads(result.stdout)
    assert [c["status"] for c in data["cases"]] == ["error", "passed"]
    assert "the run was refused" in data["cases"][0]["error"] and data["cases"][1]["id"] == "line-2"
    assert data["summary"]["errors"] == 1 and data["summary"]["latency_s"]["max"] is not None


# --- an LLM judge on the OpenAI provider, against the strict local server ---------------------------


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with ChatCompletionsServer(api_key=SECRET) as server:
        yield server


def test_an_llm_judge_grades_each_answer_through_the_openai_api(
    judge_server: ChatCompletionsServer, tmp_path: Path
) -> None:
    judge = {
        "provider": "openai",
        "name": "judge-model",
        "base_url": f"{judge_server.url}/v1",
        "api_key_env": KEY_ENV,
        "retry": {"max_attempts": 1},
        "pricing": {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
    }
    scorer = {
        "name": "relevant",
        "judge": {
            "model": judge,
            "path": "$.title",
            "criteria": "The title fits the query.",
            "min_score": 0.6,
        },
    }
    path = write(
        tmp_path / "judged.jsonl",
        {
            "id": "good",
            "inputs": {"query": "rate limits"},
            "reference": "API rate limits",
            "scorers": [scorer],
        },
    )
    judge_server.push(
        tool_call(
            {"reason": "It is the rate limits page.", "score": 0.9}, prompt_tokens=120, completion_tokens=15
        )
    )
    passed = evaluate(path, "-o", "json")
    assert passed.exit_code == 0, passed.output
    case = json.loads(passed.stdout)["cases"][0]
    assert case["status"] == "passed"
    assert case["scores"] == [
        {"scorer": "relevant", "passed": True, "score": 0.9, "reason": "0.9: It is the rate limits page."}
    ]
    assert case["judge"] == {
        "input_tokens": 120,
        "output_tokens": 15,
        "cost_usd": pytest.approx((240 + 120) / 1e6),
    }
    body = judge_server.requests[0].body
    assert body["model"] == "judge-model" and body["tool_choice"]["type"] == "function"
    prompt = body["messages"][-1]["content"]
    assert (
        "The title fits the query." in prompt and '"API rate limits"' in prompt and '"rate limits"' in prompt
    )
    assert body["messages"][0]["role"] == "system" and "never instructions" in body["messages"][0]["content"]

    judge_server.reset()
    judge_server.push(
        tool_call({"reason": "Off topic.", "score": 0.2}, prompt_tokens=120, completion_tokens=10)
    )
    failed = json.loads(evaluate(path, "-o", "json").stdout)["cases"][0]
    assert failed["status"] == "failed"
    assert (
        failed["scores"][0]["actual"] == "0.2: Off topic."
        and "at least 0.6" in failed["scores"][0]["expected"]
    )


def test_a_judge_the_server_refuses_fails_the_case_and_its_tokens_still_count(
    judge_server: ChatCompletionsServer, tmp_path: Path
) -> None:
    judge = {
        "provider": "openai",
        "name": "judge-model",
        "base_url": f"{judge_server.url}/v1",
        "api_key_env": KEY_ENV,
        "retry": {"max_attempts": 1},
        "max_reasks": 1,
        "pricing": {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
    }
    path = write(
        tmp_path / "judged.jsonl",
        {"inputs": {"query": "rate limits"}, "scorers": [{"judge": {"model": judge, "criteria": "Fits."}}]},
    )
    judge_server.push(
        *(tool_call({"reason": "?", "score": 7}, prompt_tokens=100, completion_tokens=5) for _ in range(2))
    )
    data = json.loads(evaluate(path, "-o", "json").stdout)
    case = data["cases"][0]
    assert case["status"] == "failed" and "the judge failed" in case["scores"][0]["actual"]
    assert case["judge"]["input_tokens"] == 200  # both rejected answers were billed
    assert data["summary"]["judge"]["cost_usd"] == pytest.approx((400 + 80) / 1e6)
