"""The public API's docstring examples run as written: the package's face, `load_project`, the
`FunctionModel`, the `@tool` decorator and the one template environment factory."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

DOCUMENTED_MODULES = [
    "agent_platform",
    "agent_platform._api",
    "agent_platform._runtime.models.function_model",
    "agent_platform._tool_functions",
    "agent_platform._template_sandbox",
]


@pytest.mark.parametrize("name", DOCUMENTED_MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # plugin paths default to the working directory
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    module = importlib.import_module(name)
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert results.attempted > 0, f"{name} has no examples"
    assert results.failed == 0, (
        f"{results.failed} of {results.attempted} examples of {name} failed (see above)"
    )
