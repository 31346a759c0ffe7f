"""A command that needs an optional extra that is not installed says which one to install: never
an internal error or a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent_platform import _cli as cli
from agent_platform._extras import MODULE_EXTRAS, extra_for

ROOT = Path(__file__).resolve().parents[1]


def run_main(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["platform", *argv])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    return int(stopped.value.code or 0)


def test_a_missing_extra_is_named_with_the_command_that_installs_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`platform run --local` on the core install: OpenTelemetry (the 'run' extra) is missing."""
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    cached = [m for m in sys.modules if m.startswith(("opentelemetry", "agent_platform._runtime"))]
    for module in cached:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if the extra were not installed
    code = run_main(monkeypatch, "run", "researcher", "--local", "--input", '{"topic": "retries"}')
    err = capsys.readouterr().err
    assert code == 1, err
    assert (
        "opentelemetry is not installed; it comes with the 'run' extra: pip install 'agent-platform[run]'"
        in err
    )
    assert "internal error" not in err and "Traceback" not in err


def test_every_extra_named_exists_in_the_packaging() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(MODULE_EXTRAS.values()) <= set(extras), set(MODULE_EXTRAS.values()) - set(extras)


def test_other_missing_modules_are_not_blamed_on_an_extra() -> None:
    assert extra_for(ModuleNotFoundError("No module named 'mytools'", name="mytools")) is None
    assert extra_for(ModuleNotFoundError("x", name="opentelemetry.sdk")) == ("opentelemetry", "run")
