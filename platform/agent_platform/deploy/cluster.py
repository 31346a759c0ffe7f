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

An unreachable address fails fast with a message, instead of Ray's minute-long retry loop."""

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
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_platform.processes import pid_alive
from agent_platform.state_files import create_private_file, make_private_dirs
from agent_platform.state_files import default_state_dir as state_dir

DEFAULT_NAMESPACE = "agent-platform"
HEAD_FILE = "ray-head.json"
HEAD_START_TIMEOUT_S = 90.0
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
    if head is None or not pid_alive(head.pid) or not reachable(head.address):
        return None
    return head


def start_head(base: Path | None = None) -> HeadInfo:
    """Start an embedded Ray head that outlives this process."""
    directory = base or state_dir()
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


def stop_head(base: Path | None = None, *, timeout: float = 45.0) -> HeadInfo | None:
    """Stop the embedded head (it drains, then stops its processes). None when none was running."""
    head = read_head(base)
    path = head_file(base)
    if head is None:
        return None
    if pid_alive(head.pid):
        _terminate(head.pid, timeout=timeout)
    path.unlink(missing_ok=True)
    return head


def _terminate(pid: int, *, timeout: float = 45.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
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
        if refused_token:
            raise ClusterError(_token_problem(resolved, embedded, failure)) from None
        raise ClusterError(f"cannot connect to the Ray cluster at {resolved}: {failure}") from None
    return resolved


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
