"""Reaching a Ray cluster: an address given by the user, or an embedded local head.

Without `--address` (and without RAY_ADDRESS) the platform starts a local Ray head that outlives
the command (`ray start --head --block` in its own session), records its address and pid under
the state directory, and later commands reuse it; `platform down` stops exactly that head (never
`ray stop`, which would kill every Ray on the machine, other users' included).

An unreachable address fails fast with a message, instead of Ray's minute-long retry loop."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_platform.processes import pid_alive
from agent_platform.runtime.tools.idempotency import default_state_dir as state_dir

DEFAULT_NAMESPACE = "agent-platform"
HEAD_FILE = "ray-head.json"
HEAD_START_TIMEOUT_S = 90.0
AUTH_MODE_ENV = "RAY_AUTH_MODE"


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
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "ray-head.log"
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
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, AUTH_MODE_ENV: "token"},
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
    if embedded:
        # The embedded head requires Ray's token (~/.ray/auth_token, made by `ray start` when
        # missing): a head reachable from the network must not run code for anyone. Set before
        # Ray is imported: it reads its configuration once.
        os.environ[AUTH_MODE_ENV] = "token"
    import ray

    logging.getLogger("ray").setLevel(logging.WARNING)
    try:
        ray.init(
            address=resolved,
            namespace=namespace,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {resolved}: {exc}") from None
    return resolved
