"""`platform init`: the project it writes validates and runs with the installed `platform` command,
carries working `$schema` comments, and no existing file is overwritten without --force."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from agent_platform import _schema_export as schema_export
from agent_platform._cli import init as cli_init

BIN = Path(sys.executable).parent
PLATFORM = BIN / "platform"
RUN_COMMAND = ["run", cli_init.AGENT_NAME, "--local", "--input", f"@{cli_init.INPUT_FILE}"]
SPEC_FILES = sorted(item.path for item in cli_init.SCAFFOLD if item.path.suffix == ".yaml")


def platform(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PLATFORM), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`platform init myproj`, once for the read-only tests."""
    parent = tmp_path_factory.mktemp("init")
    result = platform("init", "myproj", cwd=parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "cd myproj" in result.stdout
    assert f"platform {' '.join(RUN_COMMAND)}" in result.stdout
    return parent / "myproj"


def test_the_installed_command_is_tested() -> None:
    assert PLATFORM.is_file(), f"no `platform` command beside {sys.executable}: run `make setup`"


def test_writes_the_scaffold_and_the_schemas(project: Path) -> None:
    for item in cli_init.SCAFFOLD:
        assert (project / item.path).read_text(encoding="utf-8") == item.text
    written = {path.name: path.read_text(encoding="utf-8") for path in (project / "schemas").iterdir()}
    assert written == schema_export.render_schemas()


def test_the_project_validates(project: Path) -> None:
    result = platform("validate", "specs/", cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Valid without a hint or warning: a new project should not start by being told to change.
    assert output.strip() == f"{len(SPEC_FILES)} specs in {len(SPEC_FILES)} files valid"


def test_the_project_validates_with_its_plugin_imported(project: Path) -> None:
    result = platform("validate", "--import-plugins", "specs/", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_agent_runs_to_completion(project: Path) -> None:
    result = platform(*RUN_COMMAND, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["unit"] == f"Agent/{cli_init.AGENT_NAME}"
    assert outcome["outcome"] == "completed"
    assert outcome["output"]["longest"] == 2
    assert outcome["tool_calls"] == 2
    steps = [(step["action"], step["name"]) for step in outcome["details"]["trajectory"]]
    assert steps == [("tool", "word-stats"), ("tool", "word-stats"), ("final_answer", "final_answer")]


def test_the_script_answers_match_the_tool_it_calls(project: Path) -> None:
    """The scripted final answer states what the real tool measures on the scaffold's input."""
    # Loaded by path under its own name: `plugins` may already be this repository's package.
    spec = importlib.util.spec_from_file_location("scaffold_text_tools", project / "plugins/text_tools.py")
    assert spec is not None and spec.loader is not None
    text_tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(text_tools)
    texts = json.loads((project / cli_init.INPUT_FILE).read_text())["texts"]
    words = [text_tools.word_stats(text).words for text in texts]
    assert words == [7, 9]
    entries = [json.loads(line) for line in cli_init.SCRIPT_JSONL.splitlines()]
    assert [e["action"]["arguments"]["text"] for e in entries[:-1]] == texts
    assert entries[-1]["action"]["answer"]["longest"] == words.index(max(words)) + 1


def test_schema_comments_point_at_the_written_schemas(project: Path) -> None:
    validator = jsonschema_rs.Draft202012Validator(
        json.loads((project / "schemas" / "document.json").read_text(encoding="utf-8"))
    )
    for relative in SPEC_FILES:
        path = project / relative
        first = path.read_text(encoding="utf-8").splitlines()[0]
        prefix = "# yaml-language-server: $schema="
        assert first.startswith(prefix), f"{relative}: {first}"
        assert (path.parent / first.removeprefix(prefix)).resolve() == (project / "schemas/document.json")
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert validator.is_valid(document), f"{relative}: {document['kind']} fails document.json"


def test_the_schemas_are_what_platform_schema_checks(project: Path) -> None:
    result = platform("schema", "--check", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_generated_plugin_passes_a_default_linter(project: Path) -> None:
    """Users' own repositories lint with ruff's or black's defaults (88 columns)."""
    ruff = str(BIN / "ruff")
    checked = subprocess.run(
        [ruff, "check", "--isolated", "--select", "E,F,W,I,B,UP,SIM", "plugins"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout
    formatted = subprocess.run(
        [ruff, "format", "--isolated", "--check", "plugins"], cwd=project, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout


def test_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    assert platform("init", "p", cwd=tmp_path).returncode == 0
    edited = tmp_path / "p/specs/agents.yaml"
    edited.write_text("# mine\n", encoding="utf-8")
    removed = tmp_path / "p/inputs/text-analyst.json"
    removed.unlink()

    result = platform("init", "p", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "already exist; nothing was written (--force overwrites them)" in result.stderr
    assert "p/specs/agents.yaml" in result.stderr and "p/inputs/text-analyst.json" not in result.stderr
    assert edited.read_text(encoding="utf-8") == "# mine\n"
    assert not removed.exists(), "a refused init wrote the files that did not exist"

    forced = platform("init", "p", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    existing = len(cli_init.SCAFFOLD) + len(schema_export.render_schemas()) - 1  # all but the removed one
    assert f"overwrote {existing} existing file(s)" in forced.stdout
    assert edited.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")
    assert removed.is_file()


def test_initialises_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("an existing repository\n", encoding="utf-8")
    result = platform("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cd " not in result.stdout
    assert platform("validate", "specs/", cwd=tmp_path).returncode == 0
    assert platform(*RUN_COMMAND, cwd=tmp_path).returncode == 0


def test_a_file_in_the_way_of_a_directory_is_an_error_even_with_force(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p/specs").write_text("not a directory\n", encoding="utf-8")
    result = platform("init", "p", "--force", cwd=tmp_path)
    assert result.returncode == 1
    assert "specs is a file, not a directory" in result.stderr and "nothing was written" in result.stderr
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["specs"]


def test_the_directory_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("", encoding="utf-8")
    result = platform("init", "p", cwd=tmp_path)
    assert result.returncode == 1
    assert "p exists and is not a directory" in result.stderr
