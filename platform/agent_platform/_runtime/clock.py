"""Time, injected. Everything in the runtime that waits, expires or measures takes a `Clock`, so
tests drive backoff sleeps, circuit-breaker resets, cache TTLs and store expiry with a `FakeClock`
instead of sleeping.

- `monotonic()` measures intervals (durations, TTLs of in-memory entries, breaker timers): it never
  jumps when the wall clock is adjusted.
- `now()` is wall-clock time, always timezone-aware UTC, for anything stored or compared across
  processes (idempotency records). Never naive `utcnow()`.
- `sleep()` is awaited for backoff and polling.

Per-call timeouts use `asyncio.timeout`, i.e. the event loop's own clock, not this one: a timeout
must interrupt real work, which a fake clock cannot do.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward (for intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (backoff, polling)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `asyncio.sleep`, `datetime.now(UTC)`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


_DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock for tests: time moves only by `advance()` or `sleep()`.

    `sleep(s)` records `s` in `sleeps`, advances the clock by `s` at once and yields to the event
    loop once (so other tasks still interleave as they would). `now()` moves with `monotonic()`.
    """

    def __init__(self, start: float = 1_000.0, wall_start: datetime = _DEFAULT_START) -> None:
        if wall_start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware wall_start")
        self._start = start
        self._t = start
        self._wall_start = wall_start.astimezone(UTC)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._t - self._start)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._t += seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        self.sleeps.append(seconds)
        self._t += seconds
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(t={self._t - self._start:.3f}s)"
