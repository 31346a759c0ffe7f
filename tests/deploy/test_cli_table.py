"""Every command, every exit code, every output format: one table, through the real `platform`
console script, against a real embedded Ray head started under an empty HOME (as on a machine that
never ran Ray).

Each row is (arguments, expected exit code, what stdout must be). `json` and `yaml` rows parse the
whole of stdout: a command that prints data prints nothing else there (trees, placements and
progress go to stderr), so `| jq` works."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from tests.support.cli_env import PLATFORM, isolated_env

pytestmark = pytest.mark.slow


SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, on_script_exhausted: synthesize}
    ---
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: slow}
    spec: {provider: scripted, on_script_exhausted: synthesize, latency: 60s}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: greeter}
    spec:
      model: m
      instructions: Greet {{ inputs.who }}.
      inputs: {type: object, properties: {who: {type: string}}, required: [who]}
      output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
      runtime: {resources: {num_cpus: 0.1}}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: sleeper}
    spec:
      model: slow
      instructions: Take your time.
      output: {type: object, properties: {done: {type: boolean}}, required: [done]}
      runtime: {resources: {num_cpus: 0.1}}
    """
)
INVALID = "apiVersion: agents.platform/v1\nkind: Agent\nmetadata: {name: broken}\nspec: {model: nope}\n"


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    facts: dict[str, str] = field(default_factory=dict)  # run ids found along the way

    def platform(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PLATFORM, *args], capture_output=True, text=True, env=self.env, cwd=self.root, timeout=timeout
        )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("cli-table")
    (root / "specs").mkdir()
    (root / "specs" / "app.yaml").write_text(SPECS)
    (root / "invalid").mkdir()
    (root / "invalid" / "broken.yaml").write_text(INVALID)
    (root / "empty").mkdir()
    project = Project(root, isolated_env(root))
    applied = project.platform("apply", "specs")
    assert applied.returncode == 0, applied.stderr
    ran = project.platform("run", "greeter", "-i", '{"who": "Ada"}')
    assert ran.returncode == 0, ran.stderr
    project.facts["run"] = json.loads(ran.stdout)["run_id"]
    try:
        yield project
    finally:
        project.platform("down")


def is_json(out: str) -> bool:
    json.loads(out)
    return True


def is_yaml_mapping_or_list(out: str) -> bool:
    loaded = yaml.safe_load(out)
    assert isinstance(loaded, dict | list), out
    return True


def is_text(out: str) -> bool:
    assert out.strip(), "text output is empty"
    with pytest.raises(ValueError):
        json.loads(out)
    return True


def is_empty(out: str) -> bool:
    assert out == "", out
    return True


Check = Callable[[str], bool]
FORMAT: dict[str, Check] = {"json": is_json, "yaml": is_yaml_mapping_or_list, "text": is_text}


@dataclass(frozen=True)
class Row:
    args: tuple[str, ...]
    code: int
    stdout: Check
    stderr_has: str = ""

    @property
    def id(self) -> str:
        return " ".join(self.args)


def formats(
    args: tuple[str, ...], code: int = 0, only: tuple[str, ...] = ("text", "json", "yaml")
) -> list[Row]:
    return [Row((*args, "-o", f), code, FORMAT[f]) for f in only]


# Commands that read or print, in every format, and their failures. They change nothing, so they
# may run in any order.
READING: list[Row] = [
    *formats(("validate", "specs")),
    Row(("validate", "specs", "-o", "github"), 0, lambda out: True),
    *formats(("validate", "invalid"), 1),
    Row(("validate", "missing"), 2, is_empty, "no such file or directory"),
    Row(("validate", "empty"), 1, is_empty, "no spec files found"),
    Row(("validate", "specs", "-f", "json"), 0, is_json, "deprecated"),
    *formats(("plan", "specs")),
    Row(("plan", "invalid", "-o", "json"), 1, is_empty, "unknown Model 'nope'"),
    Row(("plan", "missing"), 2, is_empty, "no such file or directory"),
    Row(("plan", "specs", "-o", "toml"), 2, is_empty, "Invalid value"),
    *formats(("run", "greeter", "--local", "-i", '{"who": "Bo"}')),
    Row(
        ("run", "greeter", "--local", "--trace", "-o", "json", "-i", '{"who": "Bo"}'),
        0,
        is_json,
        "invoke_agent",
    ),
    Row(("run", "greeter", "--local", "-i", '{"nobody": 1}'), 2, is_empty, "required"),
    Row(("run", "nobody", "--local"), 2, is_empty, "nobody"),
    Row(("run", "greeter", "--local", "-s", "invalid"), 1, is_empty, "unknown Model"),
    *formats(("apply", "specs", "--dry-run")),
    Row(("apply", "empty"), 1, is_empty, "no spec"),
    Row(("apply", "invalid", "--dry-run"), 1, is_empty, "unknown Model"),
    *formats(("get",)),
    *formats(("get", "agents")),
    *formats(("get", "agent", "greeter")),
    *formats(("get", "Agent/greeter")),
    *formats(("get", "greeter")),
    Row(("get", "researcher"), 1, is_empty, "not deployed"),
    Row(("get", "agent", "researcher"), 1, is_empty, "Agent/researcher is not deployed"),
    Row(("get", "gadget", "x"), 2, is_empty, "not a kind"),
    *formats(("describe", "Agent/greeter")),
    *formats(("describe", "greeter")),
    Row(("describe", "Agent/nobody"), 1, is_empty, "not deployed"),
    *formats(("run", "greeter", "-i", '{"who": "Cy"}')),
    Row(("run", "greeter", "--trace", "-o", "json", "-i", '{"who": "Cy"}'), 0, is_json, "ran on:"),
    Row(("run", "greeter", "-i", '{"nobody": 1}'), 2, is_empty, "required"),
    Row(("run", "nobody"), 1, is_empty, "no deployed agent, pipeline or supervisor named 'nobody'"),
    *formats(("runs",)),
    *formats(("runs", "--all", "--limit", "5")),
    Row(("runs", "--status", "bogus"), 2, is_empty, "Invalid value"),
    Row(("runs", "--limit", "0"), 2, is_empty, "Invalid value"),
    *formats(("runs", "prune", "--older-than", "30d", "--dry-run"), only=("text",)),
    Row(("runs", "prune", "--older-than", "soon"), 2, is_empty, "--older-than"),
    Row(("result", "run-doesnotexist"), 1, is_empty, "run-doesnotexist"),
    Row(("cancel", "run-doesnotexist"), 1, is_empty, "run-doesnotexist"),
    *formats(("memory", "ls", "-s", "specs")),
    Row(("memory", "ls", "-s", "specs", "--json"), 0, is_json, "deprecated"),
    Row(("memory", "search", "nomemory", "q", "-s", "specs"), 1, is_empty, "nomemory"),
    Row(("memory", "forget", "nomemory", "-s", "specs"), 2, is_empty, "say what to forget"),
    Row(("schema", "--print", "document"), 0, is_json),
    Row(("bogus-command",), 2, is_empty, "No such command"),
]


@pytest.mark.parametrize("row", READING, ids=lambda row: row.id)
def test_reading_commands(project: Project, row: Row) -> None:
    done = project.platform(*row.args)
    assert done.returncode == row.code, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert row.stdout(done.stdout)
    assert row.stderr_has in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("output", ["text", "json", "yaml"])
def test_result_of_a_finished_run_in_every_format(project: Project, output: str) -> None:
    done = project.platform("result", project.facts["run"], "-o", output)
    assert done.returncode == 0, done.stderr
    assert FORMAT[output](done.stdout)
    if output != "text":
        parsed = json.loads(done.stdout) if output == "json" else yaml.safe_load(done.stdout)
        assert parsed["run_id"] == project.facts["run"] and parsed["outcome"] == "completed"


KILL_REPLICA = """
from agent_platform._deploy.cluster import connect
connect(None, "agent-platform", start=False)
import ray  # after connect(): it points Ray at the embedded head's token before Ray reads it
ray.kill(ray.get_actor("agent-greeter-g1-r0", namespace="agent-platform"), no_restart=True)
"""


def test_a_replica_that_is_gone_is_named_with_what_to_run(project: Project) -> None:
    """A replica killed for good (no restarts left) used to end in "internal error" (exit 3)."""
    killed = subprocess.run(
        [sys.executable, "-c", KILL_REPLICA],
        env=project.env,
        cwd=project.root,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 0, killed.stderr
    ran = project.platform("run", "greeter", "-i", '{"who": "Di"}')
    assert ran.returncode == 1, ran.stderr
    assert "replica agent-greeter-g1-r0 of Agent/greeter is gone" in ran.stderr
    assert "platform apply" in ran.stderr and "internal error" not in ran.stderr
    listed = project.platform("get", "greeter")
    assert listed.returncode == 0 and "gone" in listed.stdout
    assert project.platform("apply", "specs").returncode == 0  # recreates it
    assert project.platform("run", "greeter", "-i", '{"who": "Di"}').returncode == 0


ROTATING = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: remote}
    spec:
      provider: openai
      name: small
      base_url: URL/v1
      api_key_env: AP_ROTATED_KEY
      retry: {max_attempts: 1}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: rotator}
    spec:
      model: remote
      instructions: Answer.
      output: {type: object, properties: {answer: {type: string}}, required: [answer]}
      runtime: {resources: {num_cpus: 0.1}}
    """
)


def test_a_rotated_key_reaches_the_replicas_at_the_next_apply(project: Project, tmp_path: Path) -> None:
    """Actors inherited the environment of whatever started the head: `apply` said "unchanged"
    and runs failed with 401 until `platform down`."""
    from tests.support.openai_api import ChatCompletionsServer, tool_call

    answer = {"action": {"action": "final_answer", "answer": {"answer": "ok"}}}
    with ChatCompletionsServer(api_key="sk-first-key-0001") as server:
        specs = tmp_path / "rotating"
        specs.mkdir()
        (specs / "remote.yaml").write_text(ROTATING.replace("URL", server.url))
        project.env["AP_ROTATED_KEY"] = "sk-first-key-0001"
        try:
            assert project.platform("apply", str(specs)).returncode == 0
            server.push(tool_call(answer))
            first = project.platform("run", "rotator")
            assert first.returncode == 0, first.stderr

            server.api_key = project.env["AP_ROTATED_KEY"] = "sk-second-key-0002"
            dry = project.platform("apply", str(specs), "--dry-run")
            assert dry.returncode == 1 and "credentials changed (AP_ROTATED_KEY)" in dry.stdout
            applied = project.platform("apply", str(specs))
            assert applied.returncode == 0 and "Agent/rotator updated" in applied.stdout, applied.stdout
            assert "sk-second-key" not in applied.stdout + applied.stderr
            server.push(tool_call(answer))
            second = project.platform("run", "rotator")
            assert second.returncode == 0, second.stderr
            assert "2 unchanged," in project.platform("apply", str(specs)).stdout, (
                "and the next apply is a no-op"
            )
        finally:
            del project.env["AP_ROTATED_KEY"]
            project.platform("delete", "Agent/rotator", "Model/remote")


def test_changing_commands_in_order(project: Project, tmp_path: Path) -> None:
    """apply --dry-run, cancel, delete, down and what can be read after it: each exit code."""
    p = project.platform

    # A dry run exits 1 when something would change, and lists deletions under --prune.
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "app.yaml").write_text(SPECS.replace("Greet {{ inputs.who }}.", "Hello {{ inputs.who }}."))
    dry = p("apply", str(changed), "--dry-run", "-o", "json")
    assert dry.returncode == 1, dry.stderr
    assert {a["ref"]: a["action"] for a in json.loads(dry.stdout)["actions"]}["Agent/greeter"] == "update"
    only_greeter = tmp_path / "only-greeter"
    only_greeter.mkdir()
    (only_greeter / "app.yaml").write_text(SPECS.split("---\n")[0] + "---\n" + SPECS.split("---\n")[2])
    pruned = p("apply", str(only_greeter), "--dry-run", "--prune")
    assert pruned.returncode == 1
    assert (
        "Agent/sleeper would be deleted" in pruned.stdout and "Model/slow would be deleted" in pruned.stdout
    )
    assert p("get", "sleeper").returncode == 0, "a dry run changes nothing"

    # cancel: a detached run that is running ends cancelled; cancelling it again exits 1.
    detached = p("run", "sleeper", "--detach", "-o", "json")
    assert detached.returncode == 0, detached.stderr
    run_id = json.loads(detached.stdout)["run_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = json.loads(p("runs", "-o", "json").stdout)
        if any(r["run_id"] == run_id and r["status"] == "running" for r in listed):
            break
        time.sleep(0.5)
    cancelled = p("cancel", run_id, "-o", "json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    result = p("result", run_id, "-o", "json")
    assert result.returncode == 1 and json.loads(result.stdout)["outcome"] == "cancelled"
    again = p("cancel", run_id)
    assert again.returncode == 1 and "already ended: cancelled" in again.stderr
    pending = p("run", "sleeper", "--detach")  # the bare run id; cancelled while pending or running
    assert p("cancel", pending.stdout.strip()).returncode == 0

    # delete: a Model a deployed Agent uses is kept unless --force; the rest is deleted, and
    # what is not deployed is reported (exit 1) without stopping the others.
    in_use = p("delete", "Model/m")
    assert in_use.returncode == 1 and "still used by Agent/greeter" in in_use.stderr
    assert p("get", "model", "m").returncode == 0
    partial = p("delete", "Agent/nobody", "Agent/sleeper", "Model/slow")
    assert partial.returncode == 1 and "Agent/nobody is not deployed" in partial.stderr
    assert "Agent/sleeper deleted" in partial.stdout and "Model/slow deleted" in partial.stdout
    assert p("delete", "Agent/sleeper", "--ignore-not-found").returncode == 0

    # down, then the history is still readable from the local run store.
    assert p("down").returncode == 0
    after = p("runs", "-o", "json")
    assert after.returncode == 0, after.stderr
    assert project.facts["run"] in {r["run_id"] for r in json.loads(after.stdout)}
    assert "local run store" in after.stderr
    gone = p("get")
    assert gone.returncode == 1 and "no local Ray head is running" in gone.stderr
