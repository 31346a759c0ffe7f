"""The worker threads sync tool functions run on, apart from asyncio's default executor.

asyncio's default executor has `min(32, cpu + 4)` threads: six on a 2-core replica. Sync tools
that wait (an HTTP client, `time.sleep`, a database) hold those threads, and every other user of
the default executor queues behind them, the platform's own bookkeeping included; a queued tool
call also spends its timeout waiting for a thread. Tools therefore get a pool of their own per
event loop, `PLATFORM_TOOL_THREADS` threads (64 by default), and the stores use threads of their
own (see `SqliteIdempotencyStore`)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TOOL_THREADS = 64

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = weakref.WeakKeyDictionary()


def tool_threads() -> int:
    """The pool size: `$PLATFORM_TOOL_THREADS`, else 64 (at least 1)."""
    try:
        return max(1, int(os.environ.get("PLATFORM_TOOL_THREADS", DEFAULT_TOOL_THREADS)))
    except ValueError:
        return DEFAULT_TOOL_THREADS


def _pool(loop: asyncio.AbstractEventLoop) -> ThreadPoolExecutor:
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = ThreadPoolExecutor(max_workers=tool_threads(), thread_name_prefix="tool")
    return pool


async def run_sync_tool(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`func(*args, **kwargs)` on the tool threads, with the caller's context variables (the
    idempotency key a keyed tool reads), like `asyncio.to_thread`."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(_pool(loop), call)
