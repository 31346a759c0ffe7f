"""The Python API: its face is small and cheap to import, and the program in docs/python-api.md
runs as written (it loads specs/, registers a tool and a function model in code, and runs the
research agent)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import agent_platform as ap

ROOT = Path(__file__).resolve().parents[1]


def test_the_public_face_is_a_deliberate_list() -> None:
    assert sorted(ap.__all__) == sorted(
        [
            "API_VERSION",
            "__version__",
            "load_project",
            "Project",
            "InvalidProject",
            "Runtime",
            "UnknownUnit",
            "tool",
            "RunResult",
            "Outcome",
            "RunStream",
            "RunEvent",
            "InputError",
            "FunctionModel",
            "ModelCall",
            "ModelError",
            "ModelProvider",
            "ModelRequest",
            "ModelResult",
            "Usage",
            "configure_tracing",
            "GuardContext",
            "ClassifierInput",
            "InjectionVerdict",
        ]
    )
    for name in ap.__all__:
        assert getattr(ap, name) is not None


def test_every_other_module_is_private() -> None:
    """What is public is a choice: below the package, only the programs people run by module name
    may go without the leading underscore, and nothing public re-exports a private module."""
    root = Path(ap.__file__).parent
    public = sorted(
        path.name
        for path in root.iterdir()
        if not path.name.startswith("_")
        and (path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()))
    )
    assert public == ["local_llm.py"]
    for name in ap.__all__:
        value = getattr(ap, name)
        if isinstance(value, str):  # __version__, API_VERSION
            continue
        module = value.__module__.split(".")
        assert module[0] == "agent_platform" and module[1].startswith("_"), (name, value.__module__)


def test_python_dash_m_runs_the_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "agent_platform", "--version"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"platform {ap.__version__}"
    with pytest.raises(AttributeError):
        ap.compile_specs  # noqa: B018  (not public)


def test_importing_the_package_imports_no_runtime() -> None:
    code = (
        "import sys, agent_platform; print(sorted(m for m in sys.modules if m.startswith('agent_platform')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['agent_platform']"


def _run_program(index: int, tmp_path: Path, cwd: Path) -> str:
    """Run the index-th python block of docs/python-api.md as written (in order: the research
    program, a custom provider, following a run); its standard output."""
    doc = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    programs = re.findall(r"^```python\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    assert len(programs) == 3
    script = tmp_path / f"program{index}.py"
    script.write_text(programs[index])
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PLATFORM_STATE_DIR": str(tmp_path / "state")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_documented_program_runs(tmp_path: Path) -> None:
    from agent_platform._memory.stores.embedded import stop_embedded_server

    try:
        out = _run_program(0, tmp_path, cwd=ROOT)
    finally:  # the research agent's memory started the embedded pgvector server of that state dir
        stop_embedded_server(tmp_path / "state")
    assert out.startswith("completed\n")


def test_the_documented_custom_provider_runs(tmp_path: Path) -> None:
    assert _run_program(1, tmp_path, cwd=tmp_path) == "completed {'reply': 'Hello, Ada.'}\n"


def test_the_documented_stream_program_runs(tmp_path: Path) -> None:
    iteration = ["step.started", "model_call.started", "model_call.finished"]
    assert _run_program(2, tmp_path, cwd=tmp_path).splitlines() == [
        "run.started",
        *iteration,
        "tool_call.started",
        "tool_call.finished",
        "step.finished",
        *iteration,
        "step.finished",
        "run.finished",
        "completed {'said': 'TIDES'}",
    ]


def test_load_reports_errors_located_and_plan_refuses(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: agents.platform/v1\nkind: Agent\nmetadata: {name: a}\nspec: {model: nowhere, instructions: x}\n"
    )
    project = ap.load_project(tmp_path)
    assert not project.ok and project.errors[0].startswith(f"{tmp_path / 'bad.yaml'}:4:")
    with pytest.raises(ap.InvalidProject, match="unknown Model 'nowhere'"):
        _ = project.plan


SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: add}
spec: {description: Add two numbers., python: "nowhere:add", trust: trusted}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: calc}
spec:
  model: m
  instructions: Add 2 and 3.
  output: {type: object, properties: {sum: {type: integer}}, required: [sum]}
  tools: [add]
"""


async def test_tools_and_models_given_in_code_replace_the_declared_ones(tmp_path: Path) -> None:
    """The measured failure: a tool registered in code after `Runtime(plan)` was ignored and the
    run failed with "cannot load". Tools given to the Runtime bind to the specs of their name."""
    (tmp_path / "calc.yaml").write_text(SPECS)

    @ap.tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: The first.
            b: The second.
        """
        return a + b

    assert not ap.load_project(tmp_path).ok  # the declared module does not exist
    project = ap.load_project(tmp_path, tools=[add])
    assert project.ok, project.errors

    def decide(call: ap.ModelCall) -> dict:
        if not any(m.role == "assistant" for m in call.messages):
            return {"action": {"action": "add", "arguments": {"a": 2, "b": 3}}}
        return {"action": {"action": "final_answer", "answer": {"sum": 5}}}

    model = ap.FunctionModel(decide)
    async with ap.Runtime(project.plan, tools=[add], models={"m": model}) as runtime:
        result = await runtime.run("calc", {})
    assert result.outcome is ap.Outcome.COMPLETED and result.output == {"sum": 5}
    assert result.tool_calls == 1 and len(model.calls) == 2
    assert "5" in model.calls[1].last_text  # the tool's answer reached the model


async def test_a_function_model_answer_that_breaks_the_schema_fails_like_a_models(tmp_path: Path) -> None:
    (tmp_path / "calc.yaml").write_text(SPECS)

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    project = ap.load_project(tmp_path, tools=[add])
    model = ap.FunctionModel(lambda call: {"action": {"action": "final_answer", "answer": {"sum": "five"}}})
    async with ap.Runtime(project.plan, tools=[add], models={"m": model}) as runtime:
        result = await runtime.run("calc", {})
        with pytest.raises(ap.UnknownUnit):
            await runtime.run("nope", {})
    assert result.outcome is ap.Outcome.FAILED and "does not match" in (result.error or "")
    with pytest.raises(ap.UnknownUnit, match="no Model named 'missing'"):
        ap.Runtime(project.plan, models={"missing": model})
