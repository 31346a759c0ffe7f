"""What the platform keeps on a machine is readable by its user only: the run store (with SQLite's
-wal and -shm files), the idempotency store and the trace file are created 0600 in folders
created 0700, whatever the process umask lets through; a file that already exists keeps its
mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_platform._runstore import RunRecord, open_run_store
from agent_platform._runstore.idempotency import SqliteIdempotencyStore
from agent_platform._runtime.tracing import configure_tracing


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask during the test: the usual one, and one that takes nothing away."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory that does not exist yet, two levels below an existing folder."""
    state = tmp_path / "home" / "state"
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(state))
    return state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(state: Path, names: set[str]) -> None:
    assert {p.name for p in state.iterdir()} >= names
    for path in state.iterdir():
        assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
    assert mode(state) == 0o700 and mode(state.parent) == 0o700, "the folders made on the way too"


@pytest.mark.usefixtures("umask")
async def test_the_run_store_files_are_private(state_dir: Path) -> None:
    store = open_run_store()  # the default: runs.sqlite3 in the state directory
    try:
        await store.create_run(RunRecord("run-1", "Agent/a", inputs={"card": "4111 1111 1111 1111"}))
        assert_private(state_dir, {"runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm"})
    finally:
        await store.close()


@pytest.mark.usefixtures("umask")
async def test_the_idempotency_store_files_are_private(state_dir: Path) -> None:
    store = SqliteIdempotencyStore()  # the default: idempotency.sqlite3 in the state directory
    try:
        await store.claim("charge", "k1", owner="me", now=datetime.now(UTC), lease_s=30, ttl_s=None)
        assert_private(
            state_dir, {"idempotency.sqlite3", "idempotency.sqlite3-wal", "idempotency.sqlite3-shm"}
        )
    finally:
        await store.aclose()


@pytest.mark.usefixtures("umask")
def test_the_trace_file_is_private(state_dir: Path) -> None:
    with (
        configure_tracing(jsonl_path=state_dir / "traces.jsonl") as tracing,
        tracing.run_span("agent", "a", "r"),
    ):
        pass
    assert (state_dir / "traces.jsonl").read_text().count("\n") == 1
    assert_private(state_dir, {"traces.jsonl"})


async def test_existing_files_and_folders_keep_their_mode(tmp_path: Path) -> None:
    # Placed by their owner (a store shared with a group, say): not the platform's to change.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    (shared / "runs.sqlite3").touch()
    (shared / "runs.sqlite3").chmod(0o640)
    store = open_run_store(f"sqlite://{shared}/runs.sqlite3")
    try:
        await store.create_run(RunRecord("run-1", "Agent/a"))
    finally:
        await store.close()
    assert mode(shared) == 0o750 and mode(shared / "runs.sqlite3") == 0o640
