"""URLs: parsing, the default, redaction; the factories pick the backend by URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_platform.runstore import (
    InvalidRunStoreUrl,
    RunStoreUnavailable,
    default_run_store_url,
    open_run_store,
    redact_url,
    run_store_url,
    sqlite_path,
)
from agent_platform.runstore.postgres import PostgresRunStore
from agent_platform.runstore.sqlite import SqliteRunStore


def test_sqlite_urls() -> None:
    assert sqlite_path("sqlite:///abs/dir/runs.db") == Path("/abs/dir/runs.db")
    assert sqlite_path("sqlite:relative/runs.db") == Path("relative/runs.db")
    assert sqlite_path("sqlite:runs.db") == Path("runs.db")
    for bad in ("sqlite://host/runs.db", "sqlite:", "sqlite:///", "sqlite::memory:", "mysql://x/y"):
        with pytest.raises(InvalidRunStoreUrl):
            sqlite_path(bad)


def test_open_picks_the_backend_without_connecting(tmp_path: Path) -> None:
    assert isinstance(open_run_store(f"sqlite://{tmp_path}/r.db"), SqliteRunStore)
    assert isinstance(open_run_store("sqlite:r.db"), SqliteRunStore)
    for url in ("postgresql://u:p@127.0.0.1:1/db", "postgres://u@127.0.0.1:1/db"):
        store = open_run_store(url)
        assert isinstance(store, PostgresRunStore) and "p@" not in repr(store)
    with pytest.raises(InvalidRunStoreUrl, match="unsupported scheme 'mysql'"):
        open_run_store("mysql://u:hunter2@h/db")
    with pytest.raises(InvalidRunStoreUrl) as caught:
        open_run_store("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(caught.value)


def test_the_default_url_is_a_file_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_run_store_url(tmp_path) == f"sqlite://{tmp_path.resolve()}/runs.sqlite3"
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    assert default_run_store_url() == f"sqlite://{(tmp_path / 'state').resolve()}/runs.sqlite3"
    monkeypatch.delenv("PLATFORM_STATE_DIR")
    monkeypatch.chdir(tmp_path)
    assert default_run_store_url() == f"sqlite://{tmp_path.resolve()}/.platform/runs.sqlite3"
    assert run_store_url() == default_run_store_url()
    monkeypatch.setenv("PLATFORM_RUN_STORE", "postgresql://h/db")
    assert run_store_url() == "postgresql://h/db"
    assert run_store_url("sqlite:x.db") == "sqlite:x.db"


def test_redaction() -> None:
    assert redact_url("postgresql://user:pa%40ss@db:5432/runs") == "postgresql://user:***@db:5432/runs"
    assert redact_url("postgresql://user@db/runs") == "postgresql://user@db/runs"
    assert redact_url("sqlite:///var/lib/runs.db") == "sqlite:///var/lib/runs.db", "nothing to hide: as given"
    assert (
        redact_url("postgresql://db/runs?user=u&password=hunter2")
        == "postgresql://db/runs?user=u&password=***"
    )
    error = RunStoreUnavailable("postgresql://u:hunter2@db/x", "auth failed for password hunter2")
    assert "hunter2" not in str(error) and error.url == "postgresql://u:***@db/x"
