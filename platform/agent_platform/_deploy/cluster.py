"""Reaching a Ray cluster: an address given by the user, or an embedded local head.

Without `--address` (and without RAY_ADDRESS) the platform starts a local Ray head that outlives
the command (`ray start --head --block` in its own session), records its address and pid under
the state directory, and later commands reuse it; `platform down` stops exactly that head (never
`ray stop`, which would kill every Ray on the machine, other users' included).

The embedded head requires a token (a head that runs code for anyone who reaches its port is not
acceptable, even on loopback: other users of the machine reach it too). The platform makes its own
token once, keeps it under the state directory (mode 0600) and hands it to Ray through Ray's
documented variables (`RAY_AUTH_MODE=token`, `RAY_AUTH_TOKEN_PATH`), both to the head it starts and
to every command that connects to it. A user's own `~/.ray/auth_token` or `RAY_AUTH_TOKEN` is
neither read nor written for the embedded head; a cluster given by address uses exactly those.

An unreachable address fails fast with a message, instead of Ray's minute-long retry loop, and so
does a command whose cluster goes away while it runs (see `_watch_cluster`). A recorded head
that died is started again by the next command that needs it (_deploy/client.py restores what was
applied to it)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_platform._processes import pid_alive, process_gone
from agent_platform._state_files import create_private_file, make_private_dirs
from agent_platform._state_files import default_state_dir as state_dir

DEFAULT_NAMESPACE = "agent-platform"
HEAD_FILE = "ray-head.json"
HEAD_START_TIMEOUT_S = 90.0
HEAD_STOP_GRACE_S = 5.0  # how long a stopped head's processes get before SIGKILL (see _terminate)
AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
TOKEN_FILE = "ray-auth-token"


class ClusterError(RuntimeError):
    """The cluster cannot be reached or started: a message for the user, no traceback."""


@dataclass(frozen=True)
class HeadInfo:
    address: str
    pid: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "pid": self.pid, "log": self.log}


def head_file(base: Path | None = None) -> Path:
    return (base or state_dir()) / HEAD_FILE


def embedded_token_path(base: Path | None = None) -> Path:
    """The embedded head's token file, made on first use (256 random bits, mode 0600).

    Never printed: only its path travels, in `RAY_AUTH_TOKEN_PATH`."""
    directory = (base or state_dir()).resolve()
    make_private_dirs(directory)
    path = directory / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Made earlier (or by a concurrent command): keep it, but never let it stay readable by
        # others, and never trust an empty one (a crash between create and write).
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        if path.read_text(encoding="utf-8").strip():
            return path
        path.unlink(missing_ok=True)
        return embedded_token_path(directory)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_hex(32))
    return path


def embedded_auth_env(base: Path | None = None) -> dict[str, str]:
    """The variables that point Ray at the embedded head's token (for its processes and clients)."""
    return {AUTH_MODE_ENV: "token", AUTH_TOKEN_PATH_ENV: str(embedded_token_path(base))}


def _use_embedded_token(environ: MutableMapping[str, str], base: Path | None = None) -> None:
    # Ray reads RAY_AUTH_TOKEN before RAY_AUTH_TOKEN_PATH: a user's own token in the environment
    # would shadow the embedded head's. It is dropped from this process only, never changed.
    environ.pop(AUTH_TOKEN_ENV, None)
    environ.update(embedded_auth_env(base))


def user_token_source() -> str | None:
    """Where Ray would find the user's own token for a cluster given by address, if anywhere."""
    if os.environ.get(AUTH_TOKEN_ENV):
        return f"${AUTH_TOKEN_ENV}"
    custom = os.environ.get(AUTH_TOKEN_PATH_ENV)
    if custom:
        return custom if Path(custom).is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"invalid Ray address {address!r}: expected host:port")
    return host, int(port)


def reachable(address: str, timeout: float = 2.0) -> bool:
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_head(base: Path | None = None) -> HeadInfo | None:
    path = head_file(base)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return HeadInfo(str(data["address"]), int(data["pid"]), str(data.get("log", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_head(base: Path | None = None) -> HeadInfo | None:
    """The embedded head recorded under the state directory, if it is still up."""
    head = read_head(base)
    if head is None or not pid_alive(head.pid):
        return None
    if not reachable(head.address):
        # A head that is down is replaced, its leftovers killed: a live one that was slow to
        # accept one connection must not be taken for dead.
        time.sleep(0.5)
        if not reachable(head.address):
            return None
    return head


def start_head(base: Path | None = None) -> HeadInfo:
    """Start an embedded Ray head that outlives this process. A recorded head that died is
    replaced: what is left of its processes (workers, agents) is killed first, so they neither
    hold memory nor answer on stale ports."""
    directory = base or state_dir()
    previous = read_head(directory)
    if previous is not None:
        _kill_leftovers(previous)
    try:
        return _start_head(directory)
    except OSError as exc:  # the state directory cannot be written (read-only, full, replaced)
        raise ClusterError(f"cannot start a local Ray head under {directory}: {exc}") from None


def _start_head(directory: Path) -> HeadInfo:
    make_private_dirs(directory)
    log_path = directory / "ray-head.log"
    create_private_file(log_path)
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--disable-usage-stats",
        "--include-dashboard=false",
        "--block",
    ]
    env = dict(os.environ)
    _use_embedded_token(env, directory)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(
                f"the local Ray head exited during start-up (code {process.returncode}); see {log_path}"
            )
        if "Ray runtime started" in log_path.read_text(encoding="utf-8", errors="replace"):
            break
        time.sleep(0.25)
    else:
        _terminate(process.pid)
        raise ClusterError(
            f"the local Ray head did not start within {HEAD_START_TIMEOUT_S:g}s; see {log_path}"
        )
    head = HeadInfo(address, process.pid, str(log_path))
    create_private_file(head_file(directory))
    head_file(directory).write_text(json.dumps(head.to_json()), encoding="utf-8")
    return head


def stop_head(base: Path | None = None, *, timeout: float = HEAD_STOP_GRACE_S) -> HeadInfo | None:
    """Stop the embedded head: its processes get `timeout` to stop, then are killed. None when none was running."""
    head = read_head(base)
    path = head_file(base)
    if head is None:
        return None
    if pid_alive(head.pid):
        _terminate(head.pid, timeout=timeout)
    _kill_leftovers(head)
    path.unlink(missing_ok=True)
    return head


def head_processes(head: HeadInfo) -> dict[int, str]:
    """The processes of the head's session (pid -> command name): `ray start` runs in a session
    of its own, and everything it starts (GCS, raylet, workers) stays in it."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # The command name is in parentheses and may hold spaces: fields follow the last ')'.
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            session = int(fields[3])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        # The session id of a dead leader is never given to a new process while members are
        # left, but check the command too: only Ray's processes are ever killed here.
        if session == head.pid and (b"ray" in cmdline or name.startswith(("ray", "gcs_server", "raylet"))):
            found[int(entry.name)] = name
    return found


def _kill_leftovers(head: HeadInfo) -> None:
    for pid in head_processes(head):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _terminate(pid: int, *, timeout: float = HEAD_STOP_GRACE_S) -> None:
    # The whole process group is told at once (`ray start` leads a session of its own), then
    # killed after a short grace. A head stopped on purpose has nothing left to save: the run and
    # idempotency stores commit transactionally, and `down` forgets the deployment. Left to stop
    # itself, the leader drains its processes one after another, each with its own grace period,
    # which kept every `platform down` waiting for half a minute.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if process_gone(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_address(address: str | None, *, start: bool) -> tuple[str, bool]:
    """The address to connect to, and whether it is the embedded head.

    `--address` wins, then RAY_ADDRESS, then the embedded head (started when `start`)."""
    explicit = address or os.environ.get("RAY_ADDRESS") or None
    if explicit:
        if explicit != "auto" and not explicit.startswith("ray://") and not reachable(explicit):
            raise ClusterError(
                f"cannot reach a Ray cluster at {explicit}: nothing accepts connections there "
                "(is the head running? is the port its GCS port, 6379 by default?)"
            )
        return explicit, False
    head = running_head()
    if head is None:
        if not start:
            raise ClusterError("no deployment: no local Ray head is running (run `platform apply` first)")
        head = start_head()
    return head.address, True


def connect(address: str | None, namespace: str, *, start: bool) -> str:
    """Connect this process to the cluster (idempotent). Returns the address used."""
    loaded = sys.modules.get("ray")
    if loaded is not None and loaded.is_initialized():  # already connected (tests, benchmarks)
        return str(loaded.get_runtime_context().gcs_address)
    resolved, embedded = resolve_address(address, start=start)
    # Set before Ray is imported: it reads its configuration once per process.
    if embedded:
        _use_embedded_token(os.environ)
    elif AUTH_MODE_ENV not in os.environ and user_token_source() is not None:
        # As Ray's own `ray.init()` does for a local cluster: a token the user keeps is meant to be
        # sent. A cluster without token authentication ignores it.
        os.environ[AUTH_MODE_ENV] = "token"
    import ray

    logging.getLogger("ray").setLevel(logging.WARNING)
    failure: BaseException | None = None
    refused_token = False
    watching = threading.Event()
    # The recorded head, not only a running one: a head that dies just now is still the embedded
    # head, and its death must be told as such (the next command restarts it).
    log_path = _watch_cluster(resolved, read_head() if embedded else None, watching)
    with _native_stderr_captured() as captured:
        try:
            ray.init(
                address=resolved,
                namespace=namespace,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            failure = exc
            refused_token = _is_auth_failure(exc) or "InvalidAuthToken" in captured.text()
    if failure is not None:
        watching.set()  # not connected: nothing to watch, and the command may go on without Ray
        if refused_token:
            raise ClusterError(_token_problem(resolved, embedded, failure)) from None
        raise ClusterError(f"cannot connect to the Ray cluster at {resolved}: {failure}") from None
    if log_path is not None:
        with contextlib.suppress(OSError):
            _native_stderr_to(log_path)
        _driver_messages_to(log_path)
    return resolved


# --- while connected ------------------------------------------------------------------------------

WATCH_INTERVAL_S = 0.5
# Consecutive failed checks before the cluster counts as gone: the embedded head's death is
# certain at once (its pid, a loopback port); a remote GCS may be restarting (GCS fault
# tolerance) or behind a network blip, so it is given longer.
WATCH_MISSES_EMBEDDED = 3
WATCH_MISSES_REMOTE = 20

_activity: dict[str, str] = {}
_decided: dict[str, int] = {}  # "exit": the command's exit code, once its outcome is printed


def note_activity(doing: str, run_id: str | None = None) -> None:
    """What this command is doing with the cluster, for the message if the cluster goes away
    meanwhile (`run_id`: a run that was assigned, which the user can ask about later)."""
    _activity.clear()
    _decided.clear()
    _activity["doing"] = doing
    if run_id:
        _activity["run_id"] = run_id


def note_outcome(exit_code: int) -> None:
    """The command has done its work and printed its outcome: if the cluster goes away now
    (while Ray disconnects), the command ends quietly with this exit code. A detached run that
    was handed over and printed is submitted, whatever happens to the head a moment later."""
    _decided["exit"] = exit_code


def _watch_cluster(address: str, head: HeadInfo | None, stop: threading.Event) -> Path | None:
    """A dead head must not cost the user a minute: Ray's C++ client retries the GCS for 60 s,
    logging each retry to fd 2, then ends the process with its own message. So from the moment
    this command starts connecting, a thread checks that the cluster still answers, and when it
    stops answering the command ends at once with a message naming what to run. Once connected,
    Ray's own output goes to the returned log file for the rest of the command (Python's
    `sys.stderr` keeps the terminal)."""
    if address == "auto" or address.startswith("ray://"):
        return None  # no GCS port of our own to watch; Ray's client mode reports its own failures
    log_path = (head_file().parent if head is not None else state_dir()) / "ray-client.log"
    terminal = os.dup(2)  # the user's stderr, whatever fd 2 points at when the message is due
    thread = threading.Thread(
        target=_watch, args=(address, head, log_path, terminal, stop), name="cluster-watch", daemon=True
    )
    thread.start()
    return log_path


def _native_stderr_to(log_path: Path) -> None:
    make_private_dirs(log_path.parent)
    sys.stderr.flush()
    terminal = os.dup(2)
    sink = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.dup2(sink, 2)
    finally:
        os.close(sink)
    sys.stderr = open(terminal, "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115


def _driver_messages_to(log_path: Path) -> None:
    """Ray's driver prints what the cluster reports to it (a raylet that died comes with the last
    20 lines of its log) to *stdout*, where the command's data goes. `log_to_driver=False` does
    not cover these; they go to the log file instead."""
    import ray._private.worker as ray_worker

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        with contextlib.suppress(OSError), log_path.open("a", encoding="utf-8") as log:
            for line in data.get("lines", []):
                log.write(f"({data.get('pid', 'ray')}) {line}\n")

    if hasattr(ray_worker, "print_to_stdstream"):
        ray_worker.print_to_stdstream = to_log


def _watch(address: str, head: HeadInfo | None, log_path: Path, terminal: int, stop: threading.Event) -> None:
    misses = 0
    allowed = WATCH_MISSES_EMBEDDED if head is not None else WATCH_MISSES_REMOTE
    while not stop.wait(WATCH_INTERVAL_S):
        alive = reachable(address, timeout=1.0) and (head is None or pid_alive(head.pid))
        misses = 0 if alive else misses + 1
        if misses >= allowed:
            decided = _decided.get("exit")
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                if decided is None:
                    os.write(terminal, (_gone_message(address, head is not None, log_path) + "\n").encode())
            os._exit(1 if decided is None else decided)


def _gone_message(address: str, embedded: bool, log_path: Path) -> str:
    doing = _activity.get("doing")
    run_id = _activity.get("run_id")
    stopped = embedded and read_head() is None  # `platform down`: on purpose, nothing comes back
    if stopped:
        what = f"the local Ray head at {address} was stopped (`platform down`)"
    elif embedded:
        what = f"the local Ray head at {address} went down"
    else:
        what = f"the Ray cluster at {address} stopped answering"
    text = f"platform: {what}" + (f" while {doing}" if doing else "")
    if stopped:
        return text
    if embedded:
        text += "; the next `platform` command restarts it and re-applies the deployment"
    else:
        text += "; check the cluster, then run `platform get`"
    if run_id:
        text += (
            f". Run {run_id} resumes from its last checkpoint once the cluster is back if it was "
            f"recorded: `platform result {run_id}`"
        )
    return text + f" (Ray's own messages: {log_path})"


def _is_auth_failure(exc: BaseException) -> bool:
    from ray.exceptions import AuthenticationError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthenticationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _CapturedStderr:
    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[_CapturedStderr]:
    """Ray's C++ client logs each connection retry straight to file descriptor 2: a user would see
    a page of raw log lines before the one message that matters. They are kept aside while
    connecting, and read only to explain a failure."""
    import tempfile

    sys.stderr.flush()
    with tempfile.NamedTemporaryFile(prefix="platform-ray-connect-", suffix=".log", delete=False) as tmp:
        path = Path(tmp.name)
    saved = os.dup(2)
    try:
        with path.open("wb") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield _CapturedStderr(path)
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        path.unlink(missing_ok=True)


def _token_problem(address: str, embedded: bool, exc: BaseException) -> str:
    if embedded:
        return (
            f"the local Ray head at {address} refused this command's token "
            f"({embedded_token_path()}); if the state directory was replaced, run `platform down` "
            f"and `platform apply` again ({type(exc).__name__})"
        )
    source = user_token_source()
    if source is None:
        return (
            f"the Ray cluster at {address} requires an authentication token and none was found: "
            f"set ${AUTH_TOKEN_ENV}, point ${AUTH_TOKEN_PATH_ENV} at a file holding it, or put it in "
            "~/.ray/auth_token (on the head, `ray get-auth-token` prints it)"
        )
    return f"the Ray cluster at {address} refused the token from {source}: is it the cluster's token?"
