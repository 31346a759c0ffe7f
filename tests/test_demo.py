"""`make demo`, end to end: the four runs of the demo target, through the real `platform` command.

Each run uses the scripted models (`specs/scripts/demo.jsonl`), the bundled plugins and a fresh
state directory. The assertions follow the scripted trajectories: which tools each agent called,
in which order, and what the answers look like. Tool-call order inside the supervisor is read from
the span file (`--trace-file`), whose parent links say which task each call belongs to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "examples" / "inputs"

# The demo target's runs, in the Makefile's order: (unit, input file, extra flags).
DEMO_RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ingest": ("ingest-documents", "ingest.json", ()),
    "research": ("researcher", "research.json", ()),
    "support": ("support-agent", "support.json", ("--approve-all",)),
    "notes": ("notes-agent", "notes.json", ("--approve-all",)),
    "review": ("code-review-supervisor", "review-tasks.json", ("--approve-all",)),
}


@dataclass
class DemoRun:
    returncode: int
    result: dict[str, Any]  # the result JSON printed first
    tree: str  # the span tree (--trace), printed on stderr
    spans: list[dict[str, Any]]  # the spans written by --trace-file
    state_dir: Path
    stderr: str

    def trajectory(self) -> list[tuple[str, str]]:
        return [(step["action"], step["name"]) for step in self.result["details"]["trajectory"]]

    def tool_calls_under(self, span_name: str) -> list[str]:
        """The tools called (in start order) below the span called `span_name`."""
        (root,) = [s for s in self.spans if s["name"] == span_name]
        children: dict[str, list[dict[str, Any]]] = {}
        for span in self.spans:
            children.setdefault(span["parent_span_id"], []).append(span)
        found: list[dict[str, Any]] = []
        stack = [root]
        while stack:
            span = stack.pop()
            found.extend(
                c for c in children.get(span["span_id"], []) if c["name"].startswith("execute_tool ")
            )
            stack.extend(children.get(span["span_id"], []))
        found.sort(key=lambda s: s["start_time_unix_nano"])
        return [s["name"].removeprefix("execute_tool ") for s in found]


def _platform_exe() -> str:
    candidate = Path(sys.executable).parent / "platform"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("platform")
    if found is None:
        pytest.skip("the `platform` console script is not installed")
    return found


def run_demo(name: str, state_dir: Path) -> DemoRun:
    unit, input_file, flags = DEMO_RUNS[name]
    state_dir.mkdir(parents=True, exist_ok=True)
    trace_file = state_dir / f"{name}-spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # no OTLP export
    env.update(PLATFORM_STATE_DIR=str(state_dir), PLATFORM_WORKSPACE=str(REPO))
    command = [_platform_exe(), "run", unit, "--local", "--trace", "--trace-file", str(trace_file)]
    command += [*flags, "--input", f"@{INPUTS / input_file}"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds the result and nothing else
    spans = [json.loads(line) for line in trace_file.read_text().splitlines() if line.strip()]
    return DemoRun(proc.returncode, result, proc.stderr, spans, state_dir, proc.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DemoRun]]:
    """The four demo runs, once per module, sharing one state directory like `make demo`. Not under
    pytest's tmp dir: as root, the embedded pgvector server runs as its own user, who must reach
    its data directory. The server the runs started is stopped at the end (`platform down` does
    that in `make demo`)."""
    from agent_platform._memory.stores.embedded import stop_embedded_server

    state_dir = Path(tempfile.mkdtemp(prefix="demo-state-"))
    try:
        yield {name: run_demo(name, state_dir) for name in DEMO_RUNS}
    finally:
        stop_embedded_server(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def _completed(run: DemoRun) -> None:
    assert run.returncode == 0, run.stderr + json.dumps(run.result, indent=2)
    assert run.result["outcome"] == "completed", run.result["error"]
    assert run.result["error"] is None


def test_the_makefile_demo_runs_these_commands() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ndemo: $(STAMP)\n", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    assert "PLATFORM_STATE_DIR" in makefile.split("\ndemo: $(STAMP)\n", 1)[0].rsplit("\n\n", 1)[1]
    assert "platform validate specs/" in recipe and "platform plan specs/" in recipe
    runs = [line.split() for line in recipe.splitlines() if " run " in line and "--local" in line]
    assert [words[2] for words in runs] == [unit for unit, _, _ in DEMO_RUNS.values()]
    for words, (_, input_file, flags) in zip(runs, DEMO_RUNS.values(), strict=True):
        assert {"--local", "--trace", *flags} <= set(words)
        assert f"@examples/inputs/{input_file}" in words
    # Then the same supervisor through a deployment on an embedded Ray, which is stopped at the end.
    commands = [" ".join(line.split()[:2]) for line in recipe.splitlines() if "/platform " in line]
    deployed = commands[commands.index("$(BIN)/platform apply") :]
    assert deployed[:2] == ["$(BIN)/platform apply"] * 2, "apply twice: the second changes nothing"
    assert "$(BIN)/platform run" in deployed and deployed[-1] == "$(BIN)/platform down"
    assert "code-review-supervisor" in next(
        line for line in recipe.splitlines() if " run code-review" in line and "--local" not in line
    )


def test_ingestion_pipeline(demo: dict[str, DemoRun]) -> None:
    run = demo["ingest"]
    _completed(run)
    assert run.result["details"]["steps_completed"] == ["extract", "chunk", "prepare", "store"]
    output = run.result["output"]
    assert output["memory"] == "research-memory" and output["namespace"] == "tenant=default"
    assert output["documents"] == 3
    assert output["chunks"] > 3  # chunk_size 200: the longer documents span several chunks
    assert output["stored"] == output["chunks"] and output["skipped"] == 0
    assert (run.state_dir / "pgvector").is_dir()  # the embedded server's data
    for step in ("extract", "chunk", "prepare", "store"):
        assert f"step {step}" in run.tree


def test_ingestion_rerun_stores_nothing_twice(demo: dict[str, DemoRun]) -> None:
    first = demo["ingest"]  # the same state directory, as when `make demo` runs again
    again = run_demo("ingest", first.state_dir)
    _completed(again)
    assert again.result["output"]["stored"] == 0
    assert again.result["output"]["skipped"] == first.result["output"]["chunks"]


def test_research_agent(demo: dict[str, DemoRun]) -> None:
    run = demo["research"]
    _completed(run)
    assert run.trajectory() == [
        ("tool", "web-search"),
        ("tool", "web-search"),
        ("delegate", "fact-checker"),
        ("final_answer", "final_answer"),
    ]
    assert all(step.get("ok") for step in run.result["details"]["trajectory"][:3])
    assert run.tool_calls_under("invoke_agent fact-checker") == ["web-search"]
    assert run.tool_calls_under("invoke_agent researcher") == ["web-search"] * 3  # 2 + the fact-checker's
    output = run.result["output"]
    assert 0 <= output["confidence"] <= 1
    assert output["summary"] and output["key_findings"]
    assert {s["url"] for s in output["sources"]} == {
        "https://example.org/articles/idempotency-keys",
        "https://example.org/articles/backoff-jitter",
    }
    # It started from what the ingestion run stored: the retries runbook ranks first, fenced off
    # as untrusted data; and it left an episode of this run.
    memory = run.result["details"]["memory"]
    recalled = memory["recalled"]
    assert recalled and recalled[0]["id"].startswith("retries-runbook#")
    assert all(r["layer"] == "knowledge" and r["trust"] == "untrusted" for r in recalled)
    assert memory["episode"]
    assert "memory recall" in run.tree and "memory episode" in run.tree


def test_support_agent(demo: dict[str, DemoRun]) -> None:
    run = demo["support"]
    _completed(run)
    assert run.trajectory() == [
        ("tool", "search-knowledge-base"),
        ("tool", "create-ticket"),
        ("final_answer", "final_answer"),
    ]
    assert all(step.get("ok") for step in run.result["details"]["trajectory"][:2])
    # The email in the message is redacted before the model sees it.
    assert "pii-redaction" in run.tree and "1 email" in run.tree
    assert "jane.doe@example.com" not in json.dumps(run.result)
    # --approve-all approved the ticket: it exists in the demo's state directory, not the repo's.
    (ticket_file,) = (run.state_dir / "tickets").glob("TCK-*.json")
    ticket = json.loads(ticket_file.read_text())
    assert ticket["customer_id"] == "cus_8F3K2Q" and ticket["kb_articles"] == ["kb-002"]
    output = run.result["output"]
    assert output["resolved"] is False
    assert output["sources"] == ["https://help.example.com/kb/two-factor"]


def test_code_review_supervisor(demo: dict[str, DemoRun]) -> None:
    run = demo["review"]
    _completed(run)
    tasks = run.result["output"]
    assert {task_id: task["outcome"] for task_id, task in tasks.items()} == {
        "tests-search": "completed",
        "review-search": "completed",
    }
    # Highest priority first: the code_review route adds 10 to its task's priority of 5.
    assert run.result["details"]["start_order"] == ["review-search", "tests-search"]
    assert run.tool_calls_under("task review-search") == ["read-file", "run-linter"]
    assert run.tool_calls_under("task tests-search") == [
        "read-file",
        "collect-tests",
        "run-linter",
        "collect-tests",
    ]
    review = tasks["review-search"]["output"]
    assert review["verdict"] == "comment" and {f["line"] for f in review["findings"]} == {78, 115}
    assert tasks["tests-search"]["output"]["test_path"] == "tests/test_search_terms.py"
    assert "invoke_agent code-reviewer" in run.tree and "invoke_agent test-writer" in run.tree


def test_every_demo_tool_call_succeeds(demo: dict[str, DemoRun]) -> None:
    failed = [
        (name, span["name"], span["status"]["description"])
        for name, run in demo.items()
        for span in run.spans
        if span["name"].startswith("execute_tool ") and span["status"]["code"] == "ERROR"
    ]
    assert failed == []


def test_notes_agent_calls_the_mcp_server(demo: dict[str, DemoRun]) -> None:
    """Its tools come from plugins/mcp_notes.py over stdio, as pinned in specs/mcp.lock.yaml."""
    run = demo["notes"]
    _completed(run)
    assert run.trajectory() == [
        ("tool", "search-notes"),
        ("tool", "notes_add_note"),
        ("final_answer", "final_answer"),
    ]
    assert run.result["output"]["sources"] == ["note-retries"]
    assert run.tool_calls_under("invoke_agent notes-agent") == ["search-notes", "notes_add_note"]
    add = next(s for s in run.spans if s["name"] == "execute_tool notes_add_note")
    assert add["attributes"]["agent_platform.mcp.server"] == "notes"
    assert add["attributes"]["agent_platform.mcp.tool"] == "add_note"
