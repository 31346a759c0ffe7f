"""The `platform` command: exit codes, output formats, plan output, schema check, internal errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agent_platform
import agent_platform._validate
from agent_platform import _cli as cli

ROOT = Path(__file__).resolve().parents[1]

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: fast}
spec:
  provider: scripted
  on_script_exhausted: synthesize
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: search}
spec:
  description: Search the corpus.
  python: tools:search
  input_schema:
    type: object
    required: [query]
    properties:
      query: {type: string}
  output_schema:
    type: object
    properties:
      hits: {type: array, items: {type: string}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: helper}
spec:
  model: fast
  instructions: "Answer {{ inputs.question }}{% if inputs.detail %} in detail{% endif %}."
  inputs:
    type: object
    required: [question]
    properties:
      question: {type: string}
      detail: {type: boolean, default: false}
  output:
    type: object
    required: [answer]
    properties:
      answer: {type: string}
  tools: [search]
  runtime: {replicas: 3, resources: {num_cpus: 0.5, memory: 256Mi}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: solo}
spec:
  model: fast
  instructions: Search for the answer.
  tools: [search]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: lead}
spec:
  model: fast
  instructions: Coordinate.
  delegates: [helper]
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: batch}
spec:
  inputs:
    type: object
    required: [queries]
    properties:
      queries: {type: array, items: {type: string}}
  steps:
    - name: fan
      tool: search
      map: {over: '{{ inputs.queries }}', as: q}
      input: {query: '{{ q }}'}
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: desk}
spec:
  routes:
    ask: {agent: lead}
    bulk: {pipeline: batch}
"""

PLUGIN = "def search(query: str) -> dict:\n    return {'hits': []}\n"

# Line 7: an unknown field; line 16: a misspelt tool reference.
INVALID = """\
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: broken}
spec:
  model: fast
  instructions: Hi.
  toolz: [search]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: other}
spec:
  model: fast
  instructions: "{% if true %}Hi.{% endif %}"
  tools:
    - serch
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: search}
spec:
  description: Search.
  http: {url: 'http://example.invalid/search'}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: fast}
spec: {provider: scripted, on_script_exhausted: synthesize}
"""

UNITS = ["Agent/helper", "Agent/solo", "Agent/lead", "Pipeline/batch", "Supervisor/desk"]
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): ")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    (tmp_path / "tools.py").write_text(PLUGIN)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "all.yaml").write_text(SPECS)
    return specs


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    path = tmp_path / "invalid.yaml"
    path.write_text(INVALID)
    return path


def _plugins(valid: Path) -> list[str]:
    return ["--plugin-path", str(valid.parent)]


# --- version and usage --------------------------------------------------------------------------


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"platform {agent_platform.__version__}"


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, [])
    assert result.exit_code == 2
    assert "validate" in result.output
    assert "plan" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["plan"],
        ["validate", "--bogus", "x.yaml"],
        ["validate", "--format", "xml", "x.yaml"],
        ["plan", "--format", "github", "x.yaml"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


# --- validate -----------------------------------------------------------------------------------


def test_validate_valid_exits_0(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", str(valid), *_plugins(valid)])
    assert result.exit_code == 0, result.output
    assert "7 specs in 1 file valid" in result.stdout


def test_validate_invalid_exits_1_with_located_errors(runner: CliRunner, invalid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", str(invalid)])
    assert result.exit_code == 1, result.output
    lines = result.stdout.strip().splitlines()
    errors = [line for line in lines if LOCATED.match(line)]
    assert len(errors) == 2
    by_line = {int(LOCATED.match(e)["line"]): e for e in errors}  # type: ignore[index]
    assert set(by_line) == {7, 16}
    assert by_line[7] == f"{invalid}:7:3: Agent/broken: unknown field 'toolz' in spec (did you mean 'tools'?)"
    assert by_line[16].startswith(f"{invalid}:16:7: Agent/other: unknown Tool 'serch'")
    assert "did you mean 'search'" in by_line[16]
    assert all(LOCATED.match(e)["file"] == str(invalid) for e in errors)  # type: ignore[index]
    assert lines[-1] == "2 errors in 1 file"


def test_validate_reports_every_file(runner: CliRunner, valid: Path, invalid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", str(valid), str(invalid), *_plugins(valid)])
    assert result.exit_code == 1
    # the invalid file's documents duplicate names from the valid set: every error is in that file
    assert result.stdout.splitlines()[-1] == "4 errors in 1 of 2 files (1 hint)"


def test_validate_missing_path_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(cli.app, ["validate", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: no such file or directory" in result.stderr
    assert result.stdout == ""


def test_validate_a_folder_without_specs_fails(runner: CliRunner, tmp_path: Path) -> None:
    """CI must not pass on a mistyped path: "0 specs valid" was exit 0."""
    (tmp_path / "README.md").write_text("not a spec")
    result = runner.invoke(cli.app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "no spec files found" in result.stderr


def test_validate_json_format(runner: CliRunner, invalid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", "--format", "json", str(invalid)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == {"valid", "files", "specs", "errors", "diagnostics"}
    assert data["valid"] is False
    assert data["files"] == [str(invalid)]
    assert data["errors"] == 2
    assert data["specs"] == 3  # the Tool, the Model and Agent/other
    for d in data["diagnostics"]:
        assert set(d) == {"severity", "code", "message", "file", "line", "column", "kind", "name"}
        assert d["severity"] == "error"
        assert d["file"] == str(invalid)
        assert isinstance(d["line"], int) and d["line"] >= 1
        assert isinstance(d["column"], int) and d["column"] >= 1
    assert [(d["line"], d["column"]) for d in data["diagnostics"]] == [(7, 3), (16, 7)]  # sorted
    assert [(d["kind"], d["name"]) for d in data["diagnostics"]] == [("Agent", "broken"), ("Agent", "other")]
    assert {d["code"] for d in data["diagnostics"]} == {"invalid-extra_forbidden", "unresolved-reference"}


def test_validate_json_format_valid(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", "-f", "json", str(valid), *_plugins(valid)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["errors"] == 0
    assert data["specs"] == 7
    assert data["files"] == [str(valid / "all.yaml")]
    assert [d["severity"] for d in data["diagnostics"]] == ["hint"]


def test_validate_github_format(runner: CliRunner, invalid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", "--format", "github", str(invalid)])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    pattern = re.compile(
        r"^::error file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+),title=(?P<title>[^:]+)::(?P<msg>.+)$"
    )
    for line in lines:
        match = pattern.match(line)
        assert match, line
        assert match["file"] == str(invalid).replace(":", "%3A").replace(",", "%2C")
    matches = [pattern.match(line) for line in lines]
    assert [(m["line"], m["col"], m["title"]) for m in matches] == [  # type: ignore[index]
        ("7", "3", "Agent/broken"),
        ("16", "7", "Agent/other"),
    ]
    # the summary is not an annotation: it goes to stderr
    assert "2 errors in 1 file" in result.stderr
    assert "2 errors" not in result.stdout


def test_validate_github_format_hint_is_a_notice(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["validate", "-f", "github", str(valid), *_plugins(valid)])
    assert result.exit_code == 0
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("::notice file=")
    assert "title=Agent/solo::" in line


def test_hints_shown_by_default_and_hidden_by_no_hints(runner: CliRunner, valid: Path) -> None:
    shown = runner.invoke(cli.app, ["validate", str(valid), *_plugins(valid)])
    assert shown.exit_code == 0
    hint_lines = [line for line in shown.stdout.splitlines() if "hint:" in line]
    assert len(hint_lines) == 1
    assert LOCATED.match(hint_lines[0])
    assert "Agent/solo" in hint_lines[0]
    assert "consider a Pipeline" in hint_lines[0]
    assert "(1 hint)" in shown.stdout
    hidden = runner.invoke(cli.app, ["validate", "--no-hints", str(valid), *_plugins(valid)])
    assert hidden.exit_code == 0
    assert "hint" not in hidden.stdout
    assert hidden.stdout.strip() == "7 specs in 1 file valid"


def test_plugin_path_default_is_the_working_directory(
    runner: CliRunner, valid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLATFORM_PLUGIN_PATH", raising=False)
    monkeypatch.chdir(valid)  # tools.py is in the parent: not found
    result = runner.invoke(cli.app, ["validate", str(valid)])
    assert result.exit_code == 1
    assert "python module 'tools' not found" in result.stdout
    monkeypatch.chdir(valid.parent)
    assert runner.invoke(cli.app, ["validate", str(valid)]).exit_code == 0
    monkeypatch.chdir(valid)
    monkeypatch.setenv("PLATFORM_PLUGIN_PATH", str(valid.parent))
    assert runner.invoke(cli.app, ["validate", str(valid)]).exit_code == 0


# --- plan ---------------------------------------------------------------------------------------


def test_plan_text(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["plan", str(valid), *_plugins(valid)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Plan: 5 units (dependencies first)")
    for unit in UNITS:
        assert re.search(rf"^{re.escape(unit)}  \[", out, re.MULTILINE), unit
    assert "Agent/helper  [agent_loop]" in out
    assert "Pipeline/batch  [pipeline]" in out
    assert "Supervisor/desk  [supervisor]" in out
    assert out.count("  why:") == 5
    assert "actors:    agent-helper x3" in out
    assert "actors:    agent-solo x1" in out
    assert "actors:    pipeline-batch x1" in out
    assert "actors:    supervisor-desk x1" in out
    assert "cpu=0.5 memory=256Mi" in out
    assert "map over {{ inputs.queries }}" in out
    assert "route:     ask -> Agent/lead" in out
    note = out.strip().splitlines()[-1]
    assert note.startswith("note: model")
    assert "fast" in note
    assert "scripted provider" in note


def test_plan_note_grammar_for_one_scripted_model(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["plan", str(valid), *_plugins(valid)])
    assert "note: model fast uses the scripted provider" in result.stdout


def test_plan_text_units_are_located(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["plan", str(valid), *_plugins(valid)])
    source = str(valid / "all.yaml")
    headers = [line for line in result.stdout.splitlines() if line.split("  ")[0] in UNITS]
    assert len(headers) == 5
    for header in headers:
        assert re.search(rf"{re.escape(source)}:\d+:\d+$", header), header


def test_plan_json_dependency_order(runner: CliRunner, valid: Path) -> None:
    result = runner.invoke(cli.app, ["plan", "--format", "json", str(valid), *_plugins(valid)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"units", "models", "graph"}
    units = data["units"]
    names = [f"{u['kind']}/{u['name']}" for u in units]
    assert sorted(names) == sorted(UNITS)
    position = {name: i for i, name in enumerate(names)}
    for i, unit in enumerate(units):
        for dep in unit["depends_on"]:
            if dep in position:
                assert position[dep] < i, (dep, names[i], names)
    assert position["Agent/helper"] < position["Agent/lead"] < position["Supervisor/desk"]
    assert position["Pipeline/batch"] < position["Supervisor/desk"]
    modes = {f"{u['kind']}/{u['name']}": u["mode"] for u in units}
    assert modes == {
        "Agent/helper": "agent_loop",
        "Agent/solo": "agent_loop",
        "Agent/lead": "agent_loop",
        "Pipeline/batch": "pipeline",
        "Supervisor/desk": "supervisor",
    }
    helper = units[position["Agent/helper"]]
    assert helper["actor"]["replicas"] == 3
    assert helper["actor"]["name"] == "agent-helper"
    assert helper["reason"]
    assert helper["tools"] == ["search"]
    assert units[position["Supervisor/desk"]]["routes"] == {"ask": "Agent/lead", "bulk": "Pipeline/batch"}
    assert "scripted" in data["models"]["fast"]


def test_plan_invalid_exits_1_with_located_errors(runner: CliRunner, invalid: Path) -> None:
    result = runner.invoke(cli.app, ["plan", str(invalid)])
    assert result.exit_code == 1
    assert result.stdout == "", "plan prints data on stdout: its diagnostics go to stderr"
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if LOCATED.match(line)]
    assert len(errors) == 2
    assert lines[-1] == "2 errors in 1 file"


# --- schema -------------------------------------------------------------------------------------


def _schema_export_available() -> bool:
    try:
        import agent_platform._schema_export  # noqa: F401
    except ImportError:
        return False
    return True


needs_schema_export = pytest.mark.skipif(
    not _schema_export_available(), reason="agent_platform._schema_export is not there yet"
)


@needs_schema_export
def test_schema_check_on_the_repository_schemas(runner: CliRunner) -> None:
    schemas = ROOT / "schemas"
    if not schemas.is_dir():
        pytest.skip("schemas/ has not been generated yet")
    result = runner.invoke(cli.app, ["schema", "--check", "--out", str(schemas)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


@needs_schema_export
def test_schema_write_then_check(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    stale = runner.invoke(cli.app, ["schema", "--check", "--out", str(out)])
    assert stale.exit_code == 1
    written = runner.invoke(cli.app, ["schema", "--out", str(out)])
    assert written.exit_code == 0, written.output
    files = sorted(out.glob("*.json"))
    assert files
    for f in files:
        json.loads(f.read_text())
    assert runner.invoke(cli.app, ["schema", "--check", "--out", str(out)]).exit_code == 0
    files[0].write_text("{}\n")
    result = runner.invoke(cli.app, ["schema", "--check", "--out", str(out)])
    assert result.exit_code == 1
    assert f"{files[0]}: stale" in result.stdout


# --- internal errors ----------------------------------------------------------------------------


def test_main_turns_an_unexpected_exception_into_exit_3(
    valid: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(agent_platform._validate, "validate_paths", boom)
    monkeypatch.setattr(sys, "argv", ["platform", "validate", str(valid)])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # typer replaces it; restore afterwards
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 3
    captured = capsys.readouterr()
    assert "internal error" in captured.err
    assert "RuntimeError: boom" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_main_keyboard_interrupt_exits_130(
    valid: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(agent_platform._validate, "validate_paths", interrupted)
    monkeypatch.setattr(sys, "argv", ["platform", "validate", str(valid)])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 130
    assert "Traceback" not in capsys.readouterr().err


def test_main_passes_ordinary_exit_codes_through(valid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["platform", "validate", "--no-hints", str(valid), *_plugins(valid)])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code in (0, None)


# --- the installed console script -----------------------------------------------------------------


def _platform_exe() -> str:
    candidate = Path(sys.executable).parent / "platform"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("platform")
    if found is None:
        pytest.skip("the `platform` console script is not installed")
    return found


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_platform_exe(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_console_script_version(tmp_path: Path) -> None:
    result = _run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"platform {agent_platform.__version__}"


def test_console_script_validate_exit_codes(valid: Path, invalid: Path) -> None:
    ok = _run("validate", "specs", cwd=valid.parent)  # tools.py found in the working directory
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "7 specs in 1 file valid" in ok.stdout
    bad = _run("validate", str(invalid), cwd=valid.parent)
    assert bad.returncode == 1
    assert f"{invalid}:7:3: Agent/broken:" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
    usage = _run("validate", cwd=valid.parent)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stdout + usage.stderr


def test_console_script_plan(valid: Path) -> None:
    result = _run("plan", "-f", "json", "specs", cwd=valid.parent)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["units"]) == 5
