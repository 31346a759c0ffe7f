"""What the embedded head's applies are kept as, for a restart (deploy/applied.py): each deployed
spec comes back from the last bundle that applied it, deleted specs do not come back, and no
credential is written. And a head that died and cannot come back is reported at once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.cli_env import PLATFORM, isolated_env

from agent_platform._deploy import applied
from agent_platform._deploy.bundle import SpecBundle


def _bundle(name: str) -> SpecBundle:
    return SpecBundle(((f"/specs/{name}.yaml", f"# {name}\n"),), ("/plugins",))


def _refs(state: Path) -> list[tuple[str, tuple[str, ...]]]:
    return [(entry.bundle.files[0][0], entry.refs) for entry in applied.load(state, "ns")]


def test_applies_add_up_and_each_spec_comes_from_its_last_apply(tmp_path: Path) -> None:
    common: dict[str, Any] = {"approve_all": False, "trace_file": None, "cwd": "/work"}
    applied.record_apply(tmp_path, "ns", _bundle("a"), ["Agent/a", "Model/m"], **common)
    applied.record_apply(tmp_path, "ns", _bundle("b"), ["Agent/b", "Model/m"], **common)
    assert _refs(tmp_path) == [
        ("/specs/a.yaml", ("Agent/a",)),
        ("/specs/b.yaml", ("Agent/b", "Model/m")),
    ]
    applied.record_apply(tmp_path, "ns", _bundle("c"), ["Agent/a"], **common, deleted=["Agent/b"])
    assert _refs(tmp_path) == [("/specs/b.yaml", ("Model/m",)), ("/specs/c.yaml", ("Agent/a",))]
    applied.forget(tmp_path, "ns", ["Model/m"])
    assert _refs(tmp_path) == [("/specs/c.yaml", ("Agent/a",))]
    entry = applied.load(tmp_path, "ns")[0]
    assert entry.bundle == _bundle("c") and entry.cwd == "/work"


def test_settings_are_kept_and_credentials_are_not(tmp_path: Path) -> None:
    settings = {"run_store_url": "postgresql://db/runs", "state_dir": str(tmp_path), "trace_file": "/t.jsonl"}
    applied.record_apply(
        tmp_path,
        "ns",
        _bundle("a"),
        ["Agent/a"],
        approve_all=True,
        trace_file=None,
        cwd=None,
        settings=settings,
    )
    assert applied.load_settings(tmp_path, "ns")["run_store_url"] == "postgresql://db/runs"
    applied.forget(tmp_path, "ns", [])  # rewriting keeps them
    assert applied.load_settings(tmp_path, "ns")["trace_file"] == "/t.jsonl"
    path = applied.applied_file(tmp_path, "ns")
    assert path.stat().st_mode & 0o077 == 0
    kept = json.loads(path.read_text())
    assert set(kept) == {"settings", "bundles"}
    assert set(kept["bundles"][0]) == {
        "files",
        "plugin_paths",
        "refs",
        "approve_all",
        "trace_file",
        "cwd",
        "applied_at",
    }
    assert applied.load_settings(tmp_path, "other")["run_store_url"].startswith("sqlite://")


def test_down_forgets_everything(tmp_path: Path) -> None:
    applied.record_apply(
        tmp_path, "ns", _bundle("a"), ["Agent/a"], approve_all=False, trace_file=None, cwd=None
    )
    applied.forget_all(tmp_path)
    assert applied.load(tmp_path, "ns") == []


def test_a_head_that_cannot_come_back_fails_fast_naming_what_to_run(tmp_path: Path) -> None:
    """A head on record that died, and cannot be started again here (its log cannot be written):
    reading commands say so within seconds, with what to run, not after a minute of retries."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "ray-head.json").write_text(
        json.dumps({"address": "127.0.0.1:9", "pid": 999_999_999, "log": ""})
    )
    (state / "ray-head.log").mkdir()  # where the new head would write its log
    env = isolated_env(tmp_path)
    for command in (["runs"], ["get"], ["run", "greeter", "--detach"], ["result", "run-x"]):
        started = time.monotonic()
        done = subprocess.run([PLATFORM, *command], capture_output=True, text=True, env=env, timeout=60)
        assert time.monotonic() - started < 15, command
        assert done.returncode == 1, (command, done.stderr)
        assert "the local Ray head at 127.0.0.1:9 was down and could not be started again" in done.stderr
        assert "`platform down`" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stdout == ""


def test_endpoint_token_digests_are_kept_private_updated_and_forgotten_by_down(tmp_path: Path) -> None:
    applied.record_endpoint_tokens(tmp_path, "ns", {"api": "ab" * 32, "open": None})
    applied.record_endpoint_tokens(tmp_path, "ns", {"api": "cd" * 32})  # a rotated token
    assert applied.load_endpoint_tokens(tmp_path, "ns") == {"api": "cd" * 32, "open": None}
    kept = applied.endpoint_tokens_file(tmp_path, "ns")
    assert kept.stat().st_mode & 0o077 == 0, "only the user reads it"
    assert applied.load_endpoint_tokens(tmp_path, "other") == {}
    kept.write_text("{not json")
    assert applied.load_endpoint_tokens(tmp_path, "ns") == {}, "an unreadable file knows no token"
    applied.record_endpoint_tokens(tmp_path, "ns", {"api": "ef" * 32})
    applied.forget_all(tmp_path)
    assert applied.load_endpoint_tokens(tmp_path, "ns") == {}
