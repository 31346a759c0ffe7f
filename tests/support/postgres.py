"""A throwaway PostgreSQL server for tests, from Debian's packages (`scripts/ensure-postgres.sh`
installs them).

`initdb` into a fresh temporary directory, `pg_ctl start` on 127.0.0.1 with a free port (no Unix
socket, trust authentication, fsync off: it is thrown away), one database, a URL; stopped and
deleted at the end. PostgreSQL refuses to run as root: as root the server runs as an unprivileged
system user (`platformpg`, created when missing) through `runuser`.

Use the session-scoped `postgres_server` fixture (one server per test session, or per xdist
worker); `fresh_schema_url(server_url, name)` gives a URL whose tables live in a schema of their
own, which keeps tests apart on one server."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

SERVICE_USER = "platformpg"
DATABASE = "platform_test"
_HINT = (
    "the PostgreSQL server binaries (initdb, pg_ctl) are missing: run scripts/ensure-postgres.sh "
    "(it installs Debian's postgresql package) and try again"
)


@dataclass(frozen=True)
class PostgresServer:
    url: str  # postgresql://postgres@127.0.0.1:<port>/platform_test
    port: int
    data_dir: Path
    bin_dir: Path

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def find_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        if (bin_dir / "pg_ctl").exists():
            try:
                version = float(bin_dir.parent.name)
            except ValueError:
                version = 0.0
            candidates.append((version, bin_dir))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_service_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", SERVICE_USER, "--", *argv]


def _ensure_service_user() -> None:
    if os.geteuid() != 0:
        return
    found = subprocess.run(["id", "-u", SERVICE_USER], capture_output=True, check=False)
    if found.returncode != 0:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"cannot create the system user {SERVICE_USER}: {created.stderr.strip()}")


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_service_user(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a server; stop it and delete its files on exit."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(_HINT)
    _ensure_service_user()
    # Not under pytest's tmp dir: its parents are private to root, the server user could not enter.
    root = Path(tempfile.mkdtemp(prefix="platform-pg-"))
    data_dir = root / "data"
    log_file = root / "server.log"
    try:
        data_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(root, SERVICE_USER)
            shutil.chown(data_dir, SERVICE_USER)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        port = 0
        for attempt in range(5):  # a free port may be taken before the server binds it
            port = _free_port()
            argv = [
                *[str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file)],
                *["-o", _server_options(port), "-w"],
            ]
            done = subprocess.run(
                _as_service_user([*argv, "-t", "30", "start"]), capture_output=True, text=True, check=False
            )
            if done.returncode == 0:
                break
            if attempt == 4:
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()}\n{log[-2000:]}")
            time.sleep(0.2)
        server = PostgresServer(
            url=f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}",
            port=port,
            data_dir=data_dir,
            bin_dir=bin_dir,
        )
        import psycopg

        with psycopg.connect(server.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}".encode())
        try:
            yield server
        finally:
            subprocess.run(
                _as_service_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "stop"]),
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _server_options(port: int) -> str:
    return (
        f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )


def kill_server(server: PostgresServer) -> None:
    """Stop the server at once, as a crash would: every connection breaks, nothing is flushed."""
    argv = [str(server.bin_dir / "pg_ctl"), "-D", str(server.data_dir), "-m", "immediate", "stop"]
    subprocess.run(_as_service_user(argv), capture_output=True, check=True)


def restart_server(server: PostgresServer) -> None:
    """Start a killed server again on its port (crash recovery replays its log)."""
    log_file = server.data_dir.parent / "server.log"
    argv = [
        *[str(server.bin_dir / "pg_ctl"), "-D", str(server.data_dir), "-l", str(log_file)],
        *["-o", _server_options(server.port)],
    ]
    subprocess.run(_as_service_user([*argv, "-w", "-t", "60", "start"]), capture_output=True, check=True)


def fresh_schema_url(server_url: str, name: str) -> str:
    """Create schema `name` and return a URL whose connections put their tables in it."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'.encode())
        conn.execute(f'CREATE SCHEMA "{name}"'.encode())
    return f"{server_url}?options={quote(f'-csearch_path={name}')}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if find_bin_dir() is None:
        pytest.fail(_HINT, pytrace=False)
    with running_postgres() as server:
        yield server
