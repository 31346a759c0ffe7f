"""`platform runs`, `platform runs prune` and `platform result --checkpoint` on a run store given
by `--run-store` (no Ray needed): a real SQLite store, filled by the test through the store API.
And the deployment commands' refusals that need no cluster either (a missing store, no specs)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._runstore import RunRecord, RunStatus, open_run_store
from agent_platform._runstore.base import utcnow

runner = CliRunner()


def fill(url: str) -> None:
    """Two finished top-level runs (one completed, one failed with a checkpoint), a running one,
    and a supervisor's sub-runs, newer than all of them."""

    async def go() -> None:
        store = open_run_store(url)
        try:
            for run_id, status in (("run-ok", RunStatus.COMPLETED), ("run-bad", RunStatus.FAILED)):
                await store.create_run(RunRecord(run_id, "Agent/a", {"q": run_id}))
                attempt = await store.begin_attempt(run_id, "replica-0")
                await store.save_checkpoint(run_id, attempt, 2, {"messages": [f"{run_id} step 2"]})
                await store.finish(run_id, attempt, status, {"outcome": status.value}, error=None)
            await store.create_run(RunRecord("run-live", "Supervisor/s", {}))
            attempt = await store.begin_attempt("run-live", "replica-0")
            await store.save_checkpoint("run-live", attempt, 1, {"tasks": 3})
            for index in range(3):
                await store.create_run(
                    RunRecord(f"run-live/a-{index}", "Agent/a", {}, parent_run_id="run-live")
                )
        finally:
            await store.close()

    asyncio.run(go())


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'runs.sqlite3'}"
    fill(url)
    return url


def run_ids(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()[1:]]


def test_runs_lists_top_level_runs_newest_first_and_all_with_sub_runs(store_url: str) -> None:
    listed = runner.invoke(app, ["runs", "--run-store", store_url, "--limit", "2"])
    assert listed.exit_code == 0, listed.output
    assert run_ids(listed.output) == ["run-live", "run-bad"], "sub-runs do not use up the limit"
    everything = runner.invoke(app, ["runs", "--run-store", store_url, "--all"])
    assert run_ids(everything.output)[:3] == ["run-live/a-2", "run-live/a-1", "run-live/a-0"]
    failed = runner.invoke(app, ["runs", "--run-store", store_url, "--status", "failed"])
    assert run_ids(failed.output) == ["run-bad"] and "failed" in failed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "bogus"], "'bogus' is not one of 'pending'"),
        (["--limit", "0"], "Invalid value for '--limit'"),
    ],
)
def test_runs_refuses_bad_options_as_usage_errors(store_url: str, args: list[str], message: str) -> None:
    refused = runner.invoke(app, ["runs", *args, "--run-store", store_url])
    assert refused.exit_code == 2 and message in refused.output, refused.output
    assert "internal error" not in refused.output


def test_prune_deletes_finished_runs_older_than_the_cutoff_only(store_url: str, tmp_path: Path) -> None:
    recent = runner.invoke(app, ["runs", "prune", "--older-than", "1h", "--run-store", store_url])
    assert recent.exit_code == 0, recent.output
    assert recent.output.startswith("deleted 0 run(s) (cancelled, completed, failed) that finished before ")

    # Everything finished a moment ago is "older than" a cutoff in the future: prune with a tiny
    # age after waiting past it.
    asyncio.run(asyncio.sleep(0.05))
    dry = runner.invoke(
        app,
        [
            "runs",
            "prune",
            "--older-than",
            "10ms",
            "--status",
            "failed",
            "--dry-run",
            "--run-store",
            store_url,
        ],
    )
    assert dry.exit_code == 0 and dry.output.startswith("would delete 1 run(s) (failed)"), dry.output
    done = runner.invoke(app, ["runs", "prune", "--older-than", "10ms", "--run-store", store_url])
    assert done.exit_code == 0 and done.output.startswith("deleted 2 run(s)"), done.output
    left = runner.invoke(app, ["runs", "--run-store", store_url, "--all"])
    assert set(run_ids(left.output)) == {"run-live", "run-live/a-0", "run-live/a-1", "run-live/a-2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "invalid duration 'soon'"),
        (["--older-than", "0s"], "greater than zero"),
        (["--older-than", "1d", "--status", "running"], "'running' is not one of"),
        ([], "Missing option '--older-than'"),
    ],
)
def test_prune_refuses_bad_options_before_touching_the_store(
    store_url: str, args: list[str], message: str
) -> None:
    refused = runner.invoke(app, ["runs", "prune", *args, "--run-store", store_url])
    assert refused.exit_code == 2 and message in refused.output, refused.output
    assert len(run_ids(runner.invoke(app, ["runs", "--run-store", store_url, "--all"]).output)) == 6


def test_result_checkpoint_shows_what_a_failed_run_ended_with(store_url: str) -> None:
    failed = runner.invoke(app, ["result", "run-bad", "--checkpoint", "--run-store", store_url])
    assert failed.exit_code == 0, failed.output
    shown = json.loads(failed.output)
    assert shown["status"] == "failed" and shown["seq"] == 2 and shown["attempt"] == 1
    assert shown["state"] == {"messages": ["run-bad step 2"]}
    live = json.loads(
        runner.invoke(app, ["result", "run-live", "--checkpoint", "--run-store", store_url]).output
    )
    assert live["status"] == "running" and live["state"] == {"tasks": 3}

    completed = runner.invoke(app, ["result", "run-ok", "--checkpoint", "--run-store", store_url])
    assert completed.exit_code == 1
    assert "run run-ok has no checkpoint (a completed run's checkpoint is dropped when it finishes)" in (
        completed.output
    )
    none = runner.invoke(app, ["result", "run-live/a-0", "--checkpoint", "--run-store", store_url])
    assert none.exit_code == 1 and "it is pending and none was saved" in none.output
    missing = runner.invoke(app, ["result", "run-nope", "--checkpoint", "--run-store", store_url])
    assert missing.exit_code == 1 and "run-nope" in missing.output and "Traceback" not in missing.output


def test_prune_cutoff_is_the_age_before_now(store_url: str) -> None:
    expected = (utcnow() - timedelta(days=30)).replace(tzinfo=None)
    shown = runner.invoke(
        app, ["runs", "prune", "--older-than", "30d", "--dry-run", "--run-store", store_url]
    )
    stamp = shown.output.rsplit("finished before ", 1)[1].removesuffix(" UTC\n")
    assert abs((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S") - expected).total_seconds()) < 5


def test_a_missing_sqlite_store_is_an_error_not_a_new_empty_store(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'typo' / 'runs.sqlite3'}"
    for command in (["runs"], ["runs", "prune", "--older-than", "1d"], ["result", "run-1", "--checkpoint"]):
        refused = runner.invoke(app, [*command, "--run-store", url])
        assert refused.exit_code == 1, (command, refused.output)
        assert f"run store {url} is unavailable: there is no database file at" in refused.output
    assert not (tmp_path / "typo").exists(), "reading created nothing"


def test_apply_with_no_specs_in_its_paths_applies_nothing(tmp_path: Path) -> None:
    """A mistyped directory must not apply an empty set: with --prune it would delete every
    deployed spec. Refused before any cluster is contacted."""
    (tmp_path / "empty").mkdir()
    refused = runner.invoke(app, ["apply", str(tmp_path / "empty"), "--prune", "--address", "127.0.0.1:9"])
    assert refused.exit_code == 1
    assert f"platform apply: no specs found in {tmp_path / 'empty'}; nothing applied" in refused.output
