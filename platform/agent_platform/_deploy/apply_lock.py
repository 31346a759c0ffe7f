"""One apply at a time per deployment.

Two applies reconciling the same records at once would both create the same new replicas (Ray
refuses the second name) or undo each other's records. So an apply holds a lock for its whole
run, and a second one waits for it (up to `--lock-timeout`, 0 by default) or stops with a
message naming the holder:

- the embedded head: an advisory `flock` on `$PLATFORM_STATE_DIR/apply.lock`. The kernel drops
  it when its holder dies, however it dies, so a killed apply never blocks the next one. The
  same lock covers starting the head and restoring a deployment after the head died, so two
  commands never start two heads or restore one deployment twice;
- every cluster (the embedded head included, and one reached by `--address` from several
  machines): a lease held by the namespace's control plane actor, renewed while the apply runs.
  A killed applier stops renewing and its lease runs out after `LEASE_S`.

Nothing here imports Ray."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_platform._processes import pid_alive
from agent_platform._state_files import make_private_dirs

LOCK_FILE = "apply.lock"
LEASE_S = 30.0
POLL_S = 0.25


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: shown to whoever has to wait for it."""

    pid: int
    host: str
    since: float  # wall clock, for people
    purpose: str = "apply"
    token: str = ""

    @classmethod
    def me(cls, purpose: str = "apply") -> Holder:
        return cls(os.getpid(), socket.gethostname(), time.time(), purpose, os.urandom(8).hex())

    @classmethod
    def from_json(cls, data: Any) -> Holder | None:
        try:
            return cls(
                int(data["pid"]),
                str(data.get("host", "")),
                float(data["since"]),
                str(data.get("purpose", "apply")),
                str(data.get("token", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.since, UTC).strftime("%H:%M:%S UTC")
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"pid {self.pid}{where}, since {when}"


class ApplyInProgress(RuntimeError):
    """Another apply (or a restart of the embedded head) holds the lock."""

    def __init__(self, holder: Holder | None, waited: float) -> None:
        self.holder = holder
        what = f"another {holder.purpose}" if holder is not None else "another apply"
        who = f" ({holder.describe()})" if holder is not None else ""
        after = f" after waiting {waited:g}s" if waited > 0 else ""
        hint = (
            "wait for it to finish and run `platform apply` again, "
            "or pass --lock-timeout SECONDS to wait for it"
        )
        super().__init__(f"{what} is in progress{who}{after}; {hint}")


# --- the embedded head: a lock the kernel releases --------------------------------------------

_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within a process
_held_guard = threading.Lock()


def read_holder(directory: Path) -> Holder | None:
    try:
        return Holder.from_json(json.loads((directory / LOCK_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def local_lock(
    directory: Path,
    *,
    purpose: str = "apply",
    wait: float = 0.0,
    on_wait: Callable[[Holder | None], None] | None = None,
) -> Iterator[None]:
    """Hold the state directory's apply lock. Waits up to `wait` seconds for a holder to finish
    (`on_wait` is told who, once), then raises `ApplyInProgress`. Re-entrant in one process: an
    apply that restarts the head on its way takes it once."""
    make_private_dirs(directory)
    path = str((directory / LOCK_FILE).resolve())
    with _held_guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                fd, depth = _held[path]
                _held[path] = (fd, depth - 1)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, Path(path).parent, wait, on_wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(Holder.me(purpose).to_json()).encode(), 0)
        with _held_guard:
            _held[path] = (fd, 1)
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(path, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, directory: Path, wait: float, on_wait: Callable[[Holder | None], None] | None) -> None:
    started = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = _current_holder(directory)
        waited = time.monotonic() - started
        if waited >= wait:
            raise ApplyInProgress(holder, round(waited) if wait else 0)
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        time.sleep(POLL_S)


def _current_holder(directory: Path) -> Holder | None:
    # The holder writes who it is just after taking the lock: a reader may look in between.
    for _ in range(8):
        holder = read_holder(directory)
        if holder is not None and pid_alive(holder.pid):
            return holder
        time.sleep(0.05)
    return None


# --- any cluster: a lease held by the control plane -------------------------------------------


class Lease:
    """The control plane's side: one holder at a time, until it releases or stops renewing.

    Time is the actor's own monotonic clock: holders on other machines never compare clocks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._holder: dict[str, Any] | None = None
        self._expires = 0.0

    def acquire(self, holder: dict[str, Any], lease_s: float) -> dict[str, Any] | None:
        """None when `holder` now holds it; else who does (without their token)."""
        now = self._clock()
        current = self._holder
        if current is not None and now < self._expires and current.get("token") != holder.get("token"):
            return {k: v for k, v in current.items() if k != "token"}
        self._holder = dict(holder)
        self._expires = now + lease_s
        return None

    def renew(self, token: str, lease_s: float) -> bool:
        """False when the lease was lost (it ran out and someone else took it)."""
        current = self._holder
        if current is None or current.get("token") != token:
            return False
        self._expires = self._clock() + lease_s
        return True

    def release(self, token: str) -> None:
        if self._holder is not None and self._holder.get("token") == token:
            self._holder = None


class LeaseKeeper:
    """The applier's side: takes the lease (waiting up to `wait`), renews it from a thread while
    the apply runs, and releases it.

    `call(method, *args)` makes one call to the control plane and returns its answer."""

    def __init__(
        self,
        call: Callable[..., Any],
        *,
        wait: float = 0.0,
        lease_s: float = LEASE_S,
        on_wait: Callable[[Holder | None], None] | None = None,
    ) -> None:
        self._call = call
        self._wait = wait
        self._on_wait = on_wait
        self._lease_s = lease_s
        self.holder = Holder.me()
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        started = time.monotonic()
        told = False
        while True:
            other = self._call("acquire_apply_lock", self.holder.to_json(), self._lease_s)
            if other is None:
                break
            waited = time.monotonic() - started
            if waited >= self._wait:
                raise ApplyInProgress(Holder.from_json(other), round(waited) if self._wait else 0)
            if not told and self._on_wait is not None:
                self._on_wait(Holder.from_json(other))
                told = True
            time.sleep(min(1.0, self._lease_s / 10))
        self._thread = threading.Thread(target=self._renew, name="apply-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                if not self._call("renew_apply_lock", self.holder.token, self._lease_s):
                    self.lost = True
                    return
            except Exception:  # a slow call: the next one may get through before the lease ends
                continue

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self._call("release_apply_lock", self.holder.token)
