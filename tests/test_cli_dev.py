"""`platform dev` without a deployment: usage errors, specs invalid from the start (diagnostics,
no Ray head started, Ctrl-C ends it with exit 0), and what the watcher looks at. The whole loop on
the embedded head is tests/serve/test_dev.py."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from tests.support.cli_env import PLATFORM, isolated_env, run_platform

from agent_platform._cli.dev import DevLoop

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: quick}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: top}
spec: {description: At the top., python: "toplevel:top"}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: nested}
spec: {description: In a folder., python: "plugins.nested:nested"}
"""

FUNCTION = '''\
def {name}(text: str) -> str:
    """Echo.

    Args:
        text: The text.
    """
    return text
'''


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "platform dev: nowhere: no such file or directory"),
        (["specs", "--insecure", "--token-env", "T"], "give --token-env or --insecure, not both"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "specs").mkdir()
    done = run_platform("dev", *args, env=isolated_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "state" / "ray-head.json").exists()


def test_invalid_specs_at_start_are_shown_and_nothing_starts(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "bad.yaml").write_text(
        "apiVersion: agents.platform/v1\nkind: Agent\nmetadata: {name: a}\nspec: {modle: m, instructions: Hi.}\n"
    )
    process = subprocess.Popen(
        [PLATFORM, "dev", "specs", "--insecure"],
        env=isolated_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:  # until the watcher is up
            lines.append(line.rstrip("\n"))
            if line.startswith("platform dev: watching"):
                break
    finally:
        # The handlers are set before the first cycle: Ctrl-C now ends the session cleanly.
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    output = "\n".join(lines) + "\n" + rest
    assert process.returncode == 0, output
    # As `platform validate specs` prints it: the file named as the user gave its folder.
    assert (
        "specs/bad.yaml:4:8: Agent/a: unknown field 'modle' in spec (did you mean 'model'?)"
        in output.splitlines()
    )
    assert "platform dev: the specs are invalid: the deployment is left as it was" in output
    assert "platform dev: stopped" in output
    assert not (tmp_path / "state" / "ray-head.json").exists(), "no Ray head for specs that never validated"


def test_the_watcher_looks_at_spec_files_and_the_plugins_of_python_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLATFORM_PLUGIN_PATH", raising=False)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tools.yaml").write_text(SPECS)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "toplevel.py").write_text(FUNCTION.replace("{name}", "top"))
    (tmp_path / "plugins" / "nested.py").write_text(FUNCTION.replace("{name}", "nested"))
    from agent_platform._validate import ValidationOptions, validate_paths

    loop = DevLoop(
        [Path("specs")],
        namespace="ns",
        plugin_path=None,
        token_env=None,
        insecure=True,
        port=None,
        prune=False,
        approve_all=False,
    )
    report = validate_paths(loop.paths, ValidationOptions(plugin_paths=loop.plugin_roots))
    assert report.ok, [str(d) for d in report.diagnostics.sorted()]
    loop.plugin_tools = loop._plugin_files(report.specs)
    root = tmp_path.resolve()
    assert loop.plugin_tools == {
        root / "toplevel.py": ["Tool/top"],
        root / "plugins" / "nested.py": ["Tool/nested"],
    }
    # A module in the project folder is watched by itself: the folder holds far more than plugins.
    assert loop.watch_targets() == (root / "plugins", root / "specs", root / "toplevel.py")
    assert loop.relevant(str(root / "specs" / "tools.yaml"))
    assert loop.relevant(str(root / "specs" / "scripts" / "a.jsonl"))
    assert loop.relevant(str(root / "plugins" / "nested.py"))
    assert loop.relevant(str(root / "toplevel.py"))
    assert not loop.relevant(str(root / "specs" / "notes.txt"))
    assert not loop.relevant(str(root / "plugins" / "README.md"))
    assert not loop.relevant(str(root / "other.py"))
