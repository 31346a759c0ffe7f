"""`platform run --local --follow`: the run's tree on stderr from its stored events (iterations,
model calls with tokens, tool calls with their outcome, a delegate's run under the step that
called it, an approval request), and the same result and exit code as without --follow."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_approvals_local import cli, final, project, script, send

__all__ = ["project"]


def step(n: int) -> dict[str, object]:
    return {"action": {"action": "step", "arguments": {"n": n}}}


def test_follow_shows_the_tree_and_keeps_the_result_and_exit_code(project: Path) -> None:
    script(project, stepper=[step(1), step(2), final("stepped")])
    code, out, err = cli("run", "stepper", "--local", "--follow", "-s", "specs", "-i", "{}")
    result = json.loads(out)
    assert code == 0 and result["outcome"] == "completed" and result["output"] == {"answer": "stepped"}, err
    lines = err.splitlines()
    usage = result["usage"]
    assert lines[0] == (
        f"Agent/stepper  {result['run_id']}  tokens {usage['input_tokens']:,}/{usage['output_tokens']:,}  completed"
    )
    assert [line.strip("│├└─ ") for line in lines if "iteration" in line] == [
        "iteration 1  ok",
        "iteration 2  ok",
        "iteration 3  ok",
    ]
    assert sum("tool step  ok" in line for line in lines) == 2
    chats = [line for line in lines if "chat m (scripted)  tokens" in line]
    assert len(chats) == 3 and all(line.endswith("ok") for line in chats)
    # The same run without --follow: the same answer and exit code, and no tree.
    script(project, stepper=[step(1), step(2), final("stepped")])
    code_plain, out_plain, err_plain = cli("run", "stepper", "--local", "-s", "specs", "-i", "{}")
    plain = json.loads(out_plain)
    assert code_plain == 0 and plain["output"] == result["output"] and "iteration" not in err_plain


def test_follow_of_a_run_that_waits_for_approval_exits_1_with_the_request_in_the_tree(
    project: Path,
) -> None:
    script(
        project,
        boss=[{"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}, final("ok")],
        mailer=[send("ana@example.com"), final("sent")],
    )
    code, out, err = cli("run", "boss", "--local", "--follow", "-s", "specs", "-i", "{}")
    result = json.loads(out)
    assert code == 1 and result["outcome"] == "needs_approval", err
    key = result["details"]["approval"]["call_key"]
    tree = err[: err.index("waiting for approval: call " + key + " of tool 'send-email'")]
    assert f"Agent/boss  {result['run_id']}" in tree and "needs_approval" in tree.splitlines()[0]
    assert f"Agent/mailer  {result['run_id']}/mailer-1" in tree
    assert "tool send-email  needs approval" in tree
    assert f"waiting for approval: call {key} of tool send-email" in tree
    assert f"platform approve {result['run_id']}" in err  # the note, as without --follow


def test_follow_and_detach_together_are_a_usage_error(project: Path) -> None:
    code, _, err = cli("run", "stepper", "--follow", "--detach", "-i", "{}")
    assert code == 2 and "--follow" in err and "--detach" in err
