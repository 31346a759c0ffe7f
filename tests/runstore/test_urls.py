"""URLs: parsing, the default, redaction; the factories pick the backend by URL."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from tests.support.dsn import DSN_FORMS, PASSWORDS, dsn_with

from agent_platform._runstore import (
    InvalidRunStoreUrl,
    RunStoreError,
    RunStoreUnavailable,
    default_run_store_url,
    open_run_store,
    run_store_url,
    sqlite_path,
)
from agent_platform._runstore.postgres import PostgresRunStore
from agent_platform._runstore.sqlite import SqliteRunStore


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


# Every form a PostgreSQL connection string can carry its password in (the shared redaction is
# checked with random passwords in each form in tests/test_redaction.py).
SECRET_DSNS = [  # (connection string, its password)
    ("host=db password=hunter2 user=runner dbname=runs", "hunter2"),  # libpq key=value
    ("host=db password='hunter2 with spaces' user=runner", "hunter2 with spaces"),
    ("postgresql://runner:hunter2@db:5432/runs", "hunter2"),
    ("postgresql://runner@db/runs?user=u&password=hunter2", "hunter2"),
    ("postgresql://runner@db/runs?sslmode=require&sslpassword=hunter2", "hunter2"),
]


@pytest.mark.parametrize(("dsn", "password"), SECRET_DSNS)
def test_run_store_errors_never_show_the_password(dsn: str, password: str) -> None:
    errors: list[InvalidRunStoreUrl | RunStoreUnavailable] = [
        InvalidRunStoreUrl(dsn, "not usable"),
        # a driver's message echoing the connection string, and the password on its own
        RunStoreUnavailable(dsn, f'connection to "{dsn}" failed: password "{password}" rejected'),
    ]
    if not dsn.startswith("postgresql://"):
        with pytest.raises(InvalidRunStoreUrl) as caught:
            open_run_store(dsn)
        errors.append(caught.value)
    else:
        assert "hunter2" not in repr(open_run_store(dsn))
    for error in errors:
        assert "hunter2" not in str(error) and "hunter2" not in error.url, str(error)
    assert RunStoreUnavailable("postgresql://u:hunter2@db/x", "down").url == "postgresql://u:***@db/x"


def run_store_errors(dsn: str, password: str) -> list[RunStoreError]:
    echo = f"connection to {dsn} failed: password {password} rejected"  # a driver echoing both
    return [InvalidRunStoreUrl(dsn, "not usable"), RunStoreUnavailable(dsn, echo)]


@given(PASSWORDS, st.sampled_from(sorted(DSN_FORMS)))
def test_a_random_password_is_in_no_run_store_error(password: str, form: str) -> None:
    shown_for_another = " ".join(map(str, run_store_errors(DSN_FORMS[form]("zzzzzz"), "zzzzzz")))
    assume(password not in shown_for_another)  # else it is in the messages' own words
    for error in run_store_errors(dsn_with(password, form), password):
        assert password not in str(error), str(error)


@pytest.mark.parametrize(
    "dsn",
    [SECRET_DSNS[0][0], SECRET_DSNS[1][0], "postgresql://runner@127.0.0.1:{port}/runs?password=hunter2"],
)
def test_platform_runs_never_prints_the_password_of_its_run_store(dsn: str) -> None:
    from typer.testing import CliRunner

    from agent_platform._cli import app

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(app, ["runs", "--run-store", dsn.format(port=port)])
    assert result.exit_code == 1
    assert "platform runs:" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
