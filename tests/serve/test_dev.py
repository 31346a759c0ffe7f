"""`platform dev` as a user runs it: the real console script (empty HOME, its own state directory)
on a project folder, with a real HTTP client. The first apply and the HTTP API; a save that breaks
a spec shows located diagnostics and leaves the deployment serving; a save that fixes it and
changes two units re-applies only those (the change shows in the next run) while a run in flight
on one of them finishes on its old replica; a save of a plugin replaces the unit that calls its
tool; Ctrl-C ends the session with exit 0 and removes the endpoint."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.serve.test_http_api import free_port
from tests.support.cli_env import PLATFORM, RAY_TEXT, isolated_env, run_platform

pytestmark = pytest.mark.slow

# The sleeper's model answers after a long pause, so its run is still in flight while a save
# re-applies its unit.
SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: quick}
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
  model: quick
  runtime: {resources: {num_cpus: 0.1}}
  instructions: Greet {{ inputs.who }}.
  inputs: {type: object, properties: {who: {type: string}}, required: [who]}
  output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: sleeper}
spec:
  model: slow
  runtime: {resources: {num_cpus: 0.1}}
  instructions: Think for a long time.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: shout}
spec: {description: Shout a text., python: "plugins.loud:shout", trust: trusted}
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: shouter}
spec:
  runtime: {resources: {num_cpus: 0.1}}
  inputs: {type: object, properties: {text: {type: string}}, required: [text]}
  steps:
    - {name: loud, tool: shout, input: {text: "{{ inputs.text }}"}}
  returns: {shouted: "{{ steps.loud.output }}"}
  output: {type: object, properties: {shouted: {type: string}}, required: [shouted]}
"""

PLUGIN = '''\
def shout(text: str) -> str:
    """Shout a text.

    Args:
        text: What to shout.
    """
    return text.upper()
'''


class DevSession:
    """A running `platform dev`: its output lines as they come (stdout and stderr together)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, found: Callable[[str], bool], since: int, what: str, timeout: float = 300) -> int:
        """The index of the first line from `since` on that `found` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(since, len(self.lines)):
                if found(self.lines[index]):
                    return index
            assert self.process.poll() is None or self._reader.is_alive(), self.output()
            assert time.monotonic() < deadline, f"no {what} within {timeout:g}s:\n{self.output()}"
            time.sleep(0.2)

    def output(self) -> str:
        return "\n".join(self.lines)


def is_watching(line: str) -> bool:
    return line.startswith("platform dev: watching")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "dev.yaml").write_text(SPECS)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "loud.py").write_text(PLUGIN)
    env = isolated_env(tmp_path)
    try:
        yield tmp_path, env
    finally:
        run_platform("down", env=env, cwd=tmp_path)


def test_platform_dev_applies_serves_and_reapplies_on_save(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    port = free_port()
    spec_file = root / "specs" / "dev.yaml"
    process = subprocess.Popen(
        [PLATFORM, "dev", "specs", "--insecure", "--port", str(port), "--debounce", "200"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = DevSession(process)
    try:
        # The first cycle: validated, applied, served.
        ready = dev.wait_for(is_watching, 0, "first apply")
        first = "\n".join(dev.lines[:ready])
        assert "6 specs in 1 file valid" in first
        assert "Agent/greeter created" in first and "Agent/sleeper created" in first
        assert (
            f"Endpoint/dev serving Agent/greeter, Agent/sleeper, Pipeline/shouter at http://127.0.0.1:{port}/v1"
            in first
        )
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        greeted = api.post("/v1/units/greeter/runs?wait=true", json={"inputs": {"who": "Ada"}})
        assert greeted.status_code == 200 and greeted.json()["status"] == "completed", greeted.text
        assert set(greeted.json()["output"]) == {"greeting"}
        shouted = api.post("/v1/units/shouter/runs?wait=true", json={"inputs": {"text": "hi"}})
        assert shouted.status_code == 200 and shouted.json()["output"] == {"shouted": "HI"}, shouted.text

        # A run that will still be in flight when its unit is replaced.
        started = api.post("/v1/units/sleeper/runs", json={"inputs": {}})
        assert started.status_code == 202, started.text
        in_flight = started.json()["run_id"]
        deadline = time.monotonic() + 120
        while api.get(f"/v1/runs/{in_flight}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the sleeper's run did not start"
            time.sleep(0.2)

        # A save that breaks the greeter: located diagnostics, nothing applied, still serving.
        mark = len(dev.lines)
        spec_file.write_text(SPECS.replace("  model: quick\n", "  modle: quick\n"))
        invalid = dev.wait_for(lambda line: "the specs are invalid" in line, mark, "diagnostics")
        shown = "\n".join(dev.lines[mark:invalid])
        assert re.search(
            r"specs/dev\.yaml:15:3: Agent/greeter: unknown field 'modle' in spec \(did you mean 'model'\?\)",
            shown,
        ), shown
        assert "1 error in 1 file" in shown and "created" not in shown and "updated" not in shown
        still = api.post("/v1/units/greeter/runs?wait=true", json={"inputs": {"who": "Bo"}})
        assert still.status_code == 200 and still.json()["status"] == "completed", still.text

        # A save that fixes it and changes the greeter's output and the sleeper's instructions:
        # those two are re-applied, the models are not, and the next greeter run has the new field.
        mark = dev.wait_for(is_watching, invalid, "the watcher again") + 1
        changed = SPECS.replace(
            "properties: {greeting: {type: string}}, required: [greeting]",
            "properties: {greeting: {type: string}, version: {const: 2}}, required: [greeting, version]",
        ).replace("Think for a long time.", "Think for a very long time.")
        spec_file.write_text(changed)
        reapplied = dev.wait_for(is_watching, mark, "the re-apply")
        report = "\n".join(dev.lines[mark:reapplied])
        assert "Agent/greeter updated" in report and "Agent/sleeper updated" in report, report
        assert "Model/quick unchanged" in report and "Model/slow unchanged" in report, report
        assert "+ output field 'version' added (required)" in report, report
        assert api.get(f"/v1/runs/{in_flight}").json()["status"] == "running", (
            "the in-flight run was still running when its unit was replaced"
        )
        after = api.post("/v1/units/greeter/runs?wait=true", json={"inputs": {"who": "Cy"}})
        assert after.status_code == 200, after.text
        assert after.json()["output"]["version"] == 2, after.json()

        # The run in flight on the replaced sleeper finishes (on the replica it started on).
        deadline = time.monotonic() + 300
        while (status := api.get(f"/v1/runs/{in_flight}").json())["status"] in ("pending", "running"):
            assert time.monotonic() < deadline, f"the in-flight run never finished: {status}"
            time.sleep(1)
        assert status["status"] == "completed" and status["attempt"] == 1, status
        assert isinstance(status["output"]["answer"], str)

        # A save of the plugin: no spec changed, but the pipeline whose tool it implements is
        # replaced, and runs the new code. A run in flight on a unit that did not change is
        # left alone.
        untouched = api.post("/v1/units/sleeper/runs", json={"inputs": {}}).json()["run_id"]
        mark = len(dev.lines)
        (root / "plugins" / "loud.py").write_text(PLUGIN.replace("text.upper()", 'text.upper() + "!"'))
        replaced = dev.wait_for(is_watching, mark, "the re-apply of the plugin")
        report = "\n".join(dev.lines[mark:replaced])
        assert "plugins/loud.py changed" in report, report
        assert "Pipeline/shouter updated" in report and "depends on changed Tool/shout" in report, report
        assert "Agent/greeter unchanged" in report and "Agent/sleeper unchanged" in report, report
        shouted = api.post("/v1/units/shouter/runs?wait=true", json={"inputs": {"text": "hi"}})
        assert shouted.status_code == 200 and shouted.json()["output"] == {"shouted": "HI!"}, shouted.text
        deadline = time.monotonic() + 300
        while (status := api.get(f"/v1/runs/{untouched}").json())["status"] in ("pending", "running"):
            assert time.monotonic() < deadline, f"the run on the unchanged unit never finished: {status}"
            time.sleep(1)
        assert status["status"] == "completed" and status["attempt"] == 1, status
        api.close()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    output = dev.output()
    assert process.returncode == 0, output
    assert "platform dev: stopped; the deployment stays up" in output
    assert not any(text in output for text in RAY_TEXT), output
    # The endpoint went with the session; the units stay deployed.
    with pytest.raises(httpx.HTTPError):
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/healthz", timeout=10)
        answer.raise_for_status()
    listed = run_platform("get", "agents", env=env, cwd=root)
    assert listed.returncode == 0 and "greeter" in listed.stdout and "sleeper" in listed.stdout, listed.stderr
