"""Processes this package starts and later finds again by pid (the embedded Ray head, the
embedded PostgreSQL server)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user (e.g. the server user, when we are not root)
    return True


def process_gone(pid: int) -> bool:
    """Whether the process has ended: no such pid, or a zombie waiting for a parent that is not
    this process to reap it (signal 0 still reaches a zombie)."""
    if not pid_alive(pid):
        return True
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()  # noqa: SIM115
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")
