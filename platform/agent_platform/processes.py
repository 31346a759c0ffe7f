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
