"""Failures of the platform's own machinery: a store that cannot be reached or opened, a state
directory that cannot be written, a corrupted database.

They are never a tool's or a model's failure: the executor does not hand them to the model as
"the tool failed" (a model would work around them, and a side effect might run again), and
they are never dropped. `transient` says whether waiting may help (a connection refused, a
database busy) or not (a read-only directory, a file that is not a database), which decides
between retrying with backoff and failing at once with the message."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


class PlatformFault(Exception):
    """A failure of the platform itself (see the module docstring)."""

    transient: bool = True


async def through_outage(
    operation: Callable[[], Awaitable[T]],
    what: str,
    *,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> T:
    """`operation()`, tried again with jittered exponential backoff while it raises a transient
    `PlatformFault`, until `deadline` (a `monotonic()` reading; None: until the caller's own
    timeout or cancellation stops it). A permanent fault, or one at the deadline, is raised."""
    import asyncio  # here: `platform validate` imports this module (through the run store's errors)

    clock = monotonic or asyncio.get_running_loop().time
    pause_for = sleep or asyncio.sleep
    delay = RETRY_FIRST_S
    failures = 0
    while True:
        try:
            return await operation()
        except PlatformFault as exc:
            pause = delay * (0.5 + random.random())
            if not exc.transient or (deadline is not None and clock() + pause > deadline):
                raise
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning("%s: %s (trying again)", what, exc)
            await pause_for(pause)
            delay = min(delay * 2, RETRY_MAX_S)


# SQLite errors no wait can cure: the file cannot be opened or written, or is not a database.
_PERMANENT = (
    "unable to open",
    "readonly",
    "read-only",
    "not a database",
    "malformed",
    "permission denied",
    "no such table",
)


def sqlite_transient(exc: BaseException) -> bool:
    """Whether a failure to use a SQLite file may pass (locked, busy, an I/O hiccup)."""
    if isinstance(exc, OSError):
        return False
    text = str(exc).lower()
    return not any(marker in text for marker in _PERMANENT)
