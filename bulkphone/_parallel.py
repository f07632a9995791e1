"""Work on a stream of chunks in worker processes, results in input order, memory bounded."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["map_in_order", "start_method"]

In = TypeVar("In")
Out = TypeVar("Out")


def map_in_order(
    function: Callable[[In], Out],
    items: Iterable[In],
    *,
    processes: int | None = None,
    method: str | None = None,
) -> Iterator[Out]:
    """`map(function, items)` spread over `processes` workers (all cores by default).

    Unlike ProcessPoolExecutor.map, only a few items are read ahead, so a huge input is never
    held whole. A single item, or a single core, runs here without starting any process.
    `function` and the items must pickle (a module-level function, a functools.partial of
    one): workers may be spawned. `method` forces a start method (default: start_method())."""
    processes = processes or os.cpu_count() or 1
    items = iter(items)
    first = list(itertools.islice(items, 2))
    if processes == 1 or len(first) < 2:
        yield from map(function, itertools.chain(first, items))
        return
    context = multiprocessing.get_context(method or start_method())
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        pending: deque[Future] = deque()
        try:
            for item in itertools.chain(first, items):
                pending.append(pool.submit(function, item))
                if len(pending) > processes:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def start_method() -> str:
    """fork where it is safe: workers start at once with the library already imported. Only on
    Linux (macOS's system libraries aren't fork-safe, Windows has no fork), and never while
    an event loop runs in this thread (plan reads its input inside one). spawn otherwise."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
            return "fork"
    return "spawn"
