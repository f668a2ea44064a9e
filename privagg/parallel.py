"""Threads for numpy work: how many to use, and a map over them.

numpy's sorts, gathers and ufuncs, and OpenDP's samplers, release the GIL, so
threads (not processes, which would copy the data) put every core to work
on one release. ``PRIVAGG_THREADS`` caps the count, e.g. on a shared machine.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import numpy as np

from privagg.errors import PrivaggInputError

T = TypeVar("T")
R = TypeVar("R")

ENV_VAR = "PRIVAGG_THREADS"


def default_threads() -> int:
    """Threads a release uses: the cores this process may run on, or ``PRIVAGG_THREADS`` if set."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise PrivaggInputError(
                f"{ENV_VAR}={raw!r} is not a positive integer. Fix: set it to the number of threads to use "
                f"(e.g. {ENV_VAR}=2), or unset it to use every available core."
            )
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def thread_map(fn: Callable[[T], R], items: Iterable[T], threads: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, on up to ``threads`` threads (default :func:`default_threads`), in order."""
    items = list(items)
    workers = min(default_threads() if threads is None else threads, len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def min_max(values: np.ndarray, threads: int | None = None) -> tuple[int, int]:
    """``(min, max)`` of an integer array (``(0, 0)`` when empty), reduced in blocks on every thread."""
    n = len(values)
    if n == 0:
        return 0, 0
    parts = max(1, min(default_threads() if threads is None else threads, n // (1 << 20)))
    cuts = np.linspace(0, n, parts + 1).astype(np.int64)
    ends = thread_map(lambda i: (int(values[cuts[i]:cuts[i + 1]].min()), int(values[cuts[i]:cuts[i + 1]].max())),
                      range(parts), parts)
    return min(e[0] for e in ends), max(e[1] for e in ends)
