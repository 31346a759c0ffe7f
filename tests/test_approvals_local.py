"""Approval as a run state, locally: a call that needs a person pauses the run in the local run
store (`waiting_approval`), `platform approve` / `platform deny` decide and resume it from the
call it was making (the model is not asked again), and a killed local run resumes with
`platform resume` without repeating a side effect."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent_platform._cli import app

PLUGIN = '''
import os, sqlite3, time

def _record(kind, value):
    with sqlite3.connect(os.path.join(os.path.dirname(__file__), "effects.db")) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (kind TEXT, value TEXT)")
        db.execute("INSERT INTO effects VALUES (?, ?)", (kind, value))

def send_email(to: str, body: str) -> dict:
    """Send an email.

    Args:
        to: The address.
        body: The text.
    """
    _record("mail", to)
    return {"sent": to}

def step(n: int) -> dict:
    """Do one slow step with a side effect.

    Args:
        n: Which step.
    """
    _record("step", str(n))
    runs = os.environ.get("STEP_WAITS_FOR_A_CHECKPOINT_IN")
    if runs and n > 1:  # until a checkpoint's commit has been announced and stored (at most 30 s)
        deadline = time.monotonic() + 30
        announced = "SELECT count(*) FROM runstore_events WHERE kind = 'checkpoint.written'"
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(runs, timeout=5) as db:
                    if db.execute(announced).fetchone()[0]:
                        break
            except sqlite3.OperationalError:  # the store is writing: ask again
                pass
            time.sleep(0.01)
    if n == int(os.environ.get("HANG_AT", "-1")):
        time.sleep(3600)  # the test kills the process here
    return {"done": n}
'''

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, script: script.json, on_script_exhausted: error}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: send-email}
spec: {description: Send an email., python: "mailplug:send_email", side_effects: true}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: step}
spec:
  description: One slow step.
  python: "mailplug:step"
  side_effects: true
  requires_approval: false
  trust: trusted
  idempotency: {mode: key}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: mailer}
spec:
  model: m
  instructions: Send the mails you are asked to.
  inputs: {type: object, properties: {to: {type: string}}}
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
  tools: [send-email]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: boss}
spec:
  model: m
  instructions: Have the mailer send the mail.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
  delegates: [mailer]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: stepper}
spec:
  model: m
  instructions: Do steps 1 to 3.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
  tools: [step]
"""


def send(to: str) -> dict[str, Any]:
    return {"action": {"action": "send-email", "arguments": {"to": to, "body": "hello"}}}


def final(text: str) -> dict[str, Any]:
    return {"action": {"action": "final_answer", "answer": {"answer": text}}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mailplug.py").write_text(PLUGIN)  # the project root is a plugin path
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS)
    return tmp_path


def script(root: Path, **responses: list[dict[str, Any]]) -> None:
    (root / "specs" / "script.json").write_text(json.dumps({"responses": responses}))


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def effects(root: Path, kind: str) -> list[str]:
    path = root / "effects.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [v for (v,) in db.execute("SELECT value FROM effects WHERE kind = ? ORDER BY rowid", (kind,))]


def test_a_call_that_needs_approval_pauses_the_run_and_approve_resumes_it(project: Path) -> None:
    script(project, mailer=[send("ana@example.com"), final("sent")])
    code, out, err = cli("run", "mailer", "--local", "-s", "specs", "-i", "{}")
    paused = json.loads(out)
    assert code == 1 and paused["outcome"] == "needs_approval", err
    run_id = paused["run_id"]
    assert effects(project, "mail") == [], "nothing was sent before a person said yes"
    assert f"platform approve {run_id}" in err and "send-email" in err
    code, out, _ = cli("runs", "--status", "waiting_approval", "-o", "json")
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [run_id]
    code, out, err = cli("result", run_id, "--timeout", "5")  # answers at once: a person must act
    assert (
        code == 1 and json.loads(out)["outcome"] == "needs_approval" and f"platform approve {run_id}" in err
    )
    code, out, _ = cli("approvals", run_id, "-o", "json")
    [waiting] = json.loads(out)
    assert waiting["tool"] == "send-email" and waiting["decision"] == "waiting"
    assert waiting["arguments"] == {"to": "ana@example.com", "body": "hello"}

    code, out, err = cli("approve", run_id, "--as", "ana")
    done = json.loads(out)
    assert code == 0, err
    assert (
        done["outcome"] == "completed" and done["output"] == {"answer": "sent"} and done["run_id"] == run_id
    )
    assert effects(project, "mail") == ["ana@example.com"]
    # The script had exactly two answers: the resumed run made the paused call, not a new decision.
    assert [s.get("name") or s["action"] for s in done["details"]["trajectory"]][-2:] == [
        "send-email",
        "final_answer",
    ]
    code, out, _ = cli("approvals", run_id, "-o", "json")
    assert [(a["decision"], a["decided_by"]) for a in json.loads(out)] == [("approved", "ana")]
    code, out, _ = cli("approve", run_id)
    assert code == 1  # nothing left to decide


def test_deny_tells_the_model_and_the_run_carries_on_without_the_call(project: Path) -> None:
    script(project, mailer=[send("eve@evil.example"), send("ana@example.com"), final("done")])
    code, out, _ = cli("run", "mailer", "--local", "-s", "specs", "-i", "{}")
    run_id = json.loads(out)["run_id"]
    code, out, err = cli("deny", run_id)
    paused_again = json.loads(out)
    assert code == 1 and paused_again["outcome"] == "needs_approval", err
    assert "eve@evil.example" not in str(effects(project, "mail"))
    # The second call has other arguments: it is another call, and needs its own decision.
    code, out, _ = cli("approvals", run_id, "-o", "json")
    rows = json.loads(out)
    assert [(r["arguments"]["to"], r["decision"]) for r in rows] == [
        ("eve@evil.example", "denied"),
        ("ana@example.com", "waiting"),
    ]
    code, out, _ = cli("approve", run_id, rows[1]["call_key"][:6])
    result = json.loads(out)
    assert code == 0 and result["output"] == {"answer": "done"}
    assert effects(project, "mail") == ["ana@example.com"]


def test_a_delegates_call_pauses_the_caller_and_resumes_through_it(project: Path) -> None:
    delegate = {"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}
    script(
        project, boss=[delegate, final("the mailer sent it")], mailer=[send("ana@example.com"), final("sent")]
    )
    code, out, _ = cli("run", "boss", "--local", "-s", "specs", "-i", "{}")
    paused = json.loads(out)
    assert code == 1 and paused["outcome"] == "needs_approval"
    assert paused["details"]["approval"]["via"] == ["Agent/mailer"]
    code, out, err = cli("approve", paused["run_id"])
    assert code == 0, err
    assert json.loads(out)["output"] == {"answer": "the mailer sent it"}
    assert effects(project, "mail") == ["ana@example.com"]


def test_a_call_key_that_names_no_waiting_call_is_refused(project: Path) -> None:
    script(project, mailer=[send("ana@example.com"), final("sent")])
    _, out, _ = cli("run", "mailer", "--local", "-s", "specs", "-i", "{}")
    run_id = json.loads(out)["run_id"]
    code, _, err = cli("approve", run_id, "nope")
    assert code == 1 and "no call 'nope' is waiting" in err and "send-email" in err
    code, _, err = cli("approve", "run-unknown")
    assert code == 1 and "run-unknown" in err
    assert effects(project, "mail") == []


def test_a_killed_local_run_resumes_without_repeating_a_side_effect(project: Path) -> None:
    steps = [{"action": {"action": "step", "arguments": {"n": n}}} for n in (1, 2, 3)]
    script(project, stepper=[*steps, final("three steps")])
    env = {**os.environ, "HANG_AT": "2", "PLATFORM_STATE_DIR": str(project / "state")}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_platform", "run", "stepper", "--local", "-s", "specs", "-i", "{}"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while effects(project, "step") != ["1", "2"]:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    code, out, _ = cli("runs", "-o", "json")
    [record] = json.loads(out)
    assert record["status"] == "running"  # its process died holding it
    run_id = record["run_id"]
    code, _, err = cli("result", run_id)  # never waits forever for a run nobody runs
    assert code == 1 and "cannot finish on its own" in err and f"platform resume {run_id}" in err
    code, out, err = cli("resume", run_id)
    assert code == 0, err
    assert json.loads(out)["output"] == {"answer": "three steps"}
    # Step 2 was under way when the process died: its call is resumed through the idempotency
    # store, which knows it started; steps 1 and 3 ran once.
    assert effects(project, "step").count("1") == 1 and effects(project, "step").count("3") == 1
    code, _, err = cli("resume", run_id)
    assert code == 0  # finished: its stored result


def test_resume_refuses_a_run_whose_process_is_alive(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_platform._cli import runs as cli_runs

    monkeypatch.setattr(cli_runs, "owner_gone", lambda owner: False)
    steps = [{"action": {"action": "step", "arguments": {"n": 1}}}]
    script(project, stepper=[*steps, final("one")])
    _, out, _ = cli("run", "stepper", "--local", "-s", "specs", "-i", "{}")
    run_id = json.loads(out)["run_id"]
    with sqlite3.connect(project / "state" / "runs.sqlite3") as db:
        db.execute("UPDATE runstore_runs SET status = 'running' WHERE run_id = ?", (run_id,))
    code, _, err = cli("resume", run_id)
    assert code == 1 and "still running" in err and "--force" in err


def test_an_unwritable_state_directory_refuses_the_run_clearly(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(project, mailer=[final("nothing to send")])
    blocker = project / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(blocker / "state"))
    code, out, err = cli("run", "mailer", "--local", "-s", "specs", "-i", "{}")
    assert code == 1 and out == ""
    assert "the local run store cannot record the run" in err and "Traceback" not in err
