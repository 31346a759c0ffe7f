"""Plugin modules resolve to the file under the plugin roots, even when another root's module of
the same name was imported first; installed modules (for retry_on exception classes) resolve too."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_platform._plugin_loader import find_installed_module, import_plugin_module
from agent_platform._validate import ValidationOptions, validate_paths


def _package(root: Path, value: str) -> Path:
    (root / "samename").mkdir(parents=True)
    (root / "samename" / "__init__.py").write_text("")
    (root / "samename" / "mod.py").write_text(f"VALUE = {value!r}\n")
    return root


def test_same_module_name_under_two_roots_reads_the_resolved_file(tmp_path: Path) -> None:
    first = _package(tmp_path / "one", "one")
    second = _package(tmp_path / "two", "two")
    assert import_plugin_module("samename.mod", [first]).VALUE == "one"
    assert import_plugin_module("samename.mod", [second]).VALUE == "two"
    assert import_plugin_module("samename.mod", [first]).VALUE == "one"


def test_installed_modules_are_found_without_importing_them() -> None:
    assert find_installed_module("json") and find_installed_module("json.decoder")
    assert not find_installed_module("no_such_module_anywhere")
    assert import_plugin_module("json", []).__name__ == "json"
    with pytest.raises(ImportError, match="not found under the plugin paths"):
        import_plugin_module("no_such_module_anywhere", [])


def test_a_plugin_imported_earlier_is_not_taken_for_an_installed_module(tmp_path: Path) -> None:
    """A long-lived process (the Python API, `platform dev`, a test session) imports a project's
    `tools.py`; validating another project that lacks it must still say the module is missing, and
    importing it from that project's roots must not hand back the first project's module."""
    first = tmp_path / "first"
    first.mkdir()
    (first / "fuzzplugin_tools.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    assert import_plugin_module("fuzzplugin_tools", [first]).add(1, 2) == 3
    assert not find_installed_module("fuzzplugin_tools")
    with pytest.raises(ImportError, match="not found under the plugin paths"):
        import_plugin_module("fuzzplugin_tools", [tmp_path / "second"])


@pytest.mark.parametrize(
    ("retry_on", "import_plugins", "errors"),
    [
        ('["json:JSONDecodeError"]', False, []),
        ('["json:JSONDecodeError"]', True, []),
        (
            '["json:dumps"]',
            True,
            ["'json:dumps' is not an exception class (retry_on names exception classes)"],
        ),
        ('["nosuchmod:Error"]', False, ["python module 'nosuchmod' not found under the plugin paths"]),
    ],
)
def test_retry_on_exception_classes(
    tmp_path: Path, retry_on: str, import_plugins: bool, errors: list[str]
) -> None:
    (tmp_path / "tools.py").write_text('def f(q: str) -> str:\n    """F."""\n    return q\n')
    (tmp_path / "t.yaml").write_text(
        "apiVersion: agents.platform/v1\nkind: Tool\nmetadata: {name: t}\nspec:\n  description: d\n"
        f"  python: tools:f\n  retry: {{max_attempts: 2, retry_on: {retry_on}}}\n"
    )
    report = validate_paths(
        [tmp_path / "t.yaml"], ValidationOptions(plugin_paths=[tmp_path], import_plugins=import_plugins)
    )
    messages = [d.message for d in report.diagnostics.errors]
    assert len(messages) == len(errors)
    for message, expected in zip(messages, errors, strict=True):
        assert message.startswith(expected)


# --- a module that cannot be found says how to make it findable ----------------------------------


def test_a_missing_plugin_module_names_where_it_looked_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "apiVersion: agents.platform/v1\nkind: Tool\nmetadata: {name: t}\nspec:\n  description: d\n"
        "  python: plugs.search:run\n"
    )
    elsewhere = tmp_path / "elsewhere"
    report = validate_paths([tmp_path / "t.yaml"], ValidationOptions(plugin_paths=[tmp_path, elsewhere]))
    (error,) = report.diagnostics.errors
    assert error.message == (
        f"python module 'plugs.search' not found under the plugin paths ({tmp_path}, {elsewhere}) nor "
        "installed: looked for plugs/search.py and plugs/search/__init__.py; to look elsewhere, pass "
        "--plugin-path DIR or add DIR to $PLATFORM_PLUGIN_PATH"
    )


def test_a_tool_whose_module_cannot_be_imported_at_run_time_says_how_to_find_it(tmp_path: Path) -> None:
    from agent_platform._compile.plan import ToolBinding
    from agent_platform._runtime.tools.interface import UnavailableTool
    from agent_platform._runtime.tools.registry import ToolRegistry
    from agent_platform._spec.kinds import ToolSpec

    registry = ToolRegistry(plugin_paths=[tmp_path])
    spec = ToolSpec.model_validate({"description": "d", "python": "plugs.search:run"})
    tool = registry.load_binding(ToolBinding("t", spec))
    assert isinstance(tool, UnavailableTool)
    assert tool.reason.startswith(
        "cannot load plugs.search:run: ImportError: python module 'plugs.search' not found"
    )
    assert str(tmp_path.resolve()) in tool.reason
    assert tool.reason.endswith("pass --plugin-path DIR or add DIR to $PLATFORM_PLUGIN_PATH")
