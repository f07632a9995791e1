"""Work on a stream of chunks in worker processes, results in input order, memory bounded."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["map_in_order"]

In = TypeVar("In")
Out = TypeVar("Out")


def map_in_order(
    function: Callable[[In], Out],
    items: Iterable[In],
    *,
    processes: int | None = None,
) -> Iterator[Out]:
    """`map(function, items)` spread over `processes` workers (all cores by default).

    Unlike ProcessPoolExecutor.map, only a few items are read ahead, so a huge input is never
    held whole. A single item, or a single core, runs here without starting any process."""
    processes = processes or os.cpu_count() or 1
    items = iter(items)
    first = list(itertools.islice(items, 2))
    if processes == 1 or len(first) < 2:
        yield from map(function, itertools.chain(first, items))
        return
    # fork: workers start at once, with the library already imported.
    context = multiprocessing.get_context("fork")
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
