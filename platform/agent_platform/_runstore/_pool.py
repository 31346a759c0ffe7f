"""Blocking database connections served from dedicated worker threads.

Each worker thread owns one connection (opened on first use, reopened after it broke; one idle for a while is checked
before use), so
blocking driver calls never run on the event loop and a connection is never shared between
threads. Not tied to an event loop: one store can be used from several loops (each Ray actor
has its own; tests use one loop per test)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from agent_platform._runstore.base import RunStoreError

C = TypeVar("C")
T = TypeVar("T")


class ThreadConnections(Generic[C]):
    def __init__(
        self,
        *,
        connect: Callable[[], C],
        close: Callable[[C], None],
        broken: Callable[[C, BaseException], bool],
        size: int,
        name: str,
        alive: Callable[[C], bool] | None = None,
        idle_check_s: float = 5.0,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._connect = connect
        self._close = close
        self._broken = broken
        self._alive = alive
        self.idle_check_s = idle_check_s
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._local = threading.local()
        self._connections: dict[int, C] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.name = name

    def _call(self, fn: Callable[[C], T]) -> T:
        conn: C | None = getattr(self._local, "conn", None)
        now = time.monotonic()
        if conn is not None and self._alive is not None and now - self._local.used >= self.idle_check_s:
            # An idle connection may have been closed by the server (a restart, a failover, an idle
            # timeout): check it first, so the call gets a fresh one instead of an error.
            try:
                alive = self._alive(conn)
            except Exception:
                alive = False
            if not alive:
                self._drop(conn)
                conn = None
        self._local.used = now
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections[id(conn)] = conn
        try:
            return fn(conn)
        except BaseException as exc:
            if self._broken(conn, exc):
                self._drop(conn)
            raise

    def _drop(self, conn: C) -> None:
        self._local.conn = None
        with self._lock:
            self._connections.pop(id(conn), None)
        with contextlib.suppress(Exception):  # already broken: nothing more to release
            self._close(conn)

    async def run(self, fn: Callable[[C], T]) -> T:
        """`fn(connection)` on a worker thread."""
        if self._closed:
            raise RunStoreError(f"{self.name} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def close(self) -> None:
        """Wait for calls in flight, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(Exception):
                self._close(conn)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
