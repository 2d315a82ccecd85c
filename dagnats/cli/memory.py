"""Freed memory given back to the system by long-running processes (glibc's allocator).

After a burst (1,000 runs in flight) the engine frees what those runs held, but glibc's
``malloc`` keeps freed chunks that sit between live ones: its own trimming returns only the
top of the heap. Issue 10 measured about 5 MiB held that way after 20,000 finished runs.
``malloc_trim(0)`` returns every free page, wherever it is. No maintained library offers it,
so it is called through ``ctypes`` (ADR 0016, item 11), every ``TRIM_INTERVAL_S``: a trim
takes about 0.1 ms when it has pages to return and 0.01 ms when it has none. Elsewhere
(macOS, musl) it does nothing; ``DAGNATS_MALLOC_TRIM=off`` turns it off.

Python's own small-object arenas (1 MiB each) are not glibc's to return: an arena goes back
only once every object in it is freed, which this does not change.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import itertools
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

TRIM_ENV = "DAGNATS_MALLOC_TRIM"  # "on" (or unset): trim when glibc is found; "off": never
TRIM_MODES = ("on", "off")
TRIM_INTERVAL_S = 0.5


class Glibc:
    """glibc's ``malloc_trim``, and how many times it ran."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._trim = lib.malloc_trim
        self._trim.restype = ctypes.c_int
        self._trim.argtypes = [ctypes.c_size_t]
        self.trims = 0
        """How many times :meth:`trim` ran."""

    def trim(self) -> bool:
        """Give every free page back (``malloc_trim(0)``); whether any was."""
        self.trims += 1
        return bool(self._trim(0))


def glibc() -> Glibc | None:
    """The process's glibc allocator, or ``None`` (another C library)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return Glibc(ctypes.CDLL(name))
    except (OSError, AttributeError):  # not glibc: no malloc_trim
        return None


def wanted() -> bool:
    mode = os.environ.get(TRIM_ENV) or "on"
    if mode not in TRIM_MODES:
        raise ValueError(f"{TRIM_ENV} must be one of {', '.join(TRIM_MODES)}, got {mode!r}")
    return mode == "on"


async def return_freed(
    lib: Glibc, *, interval_s: float = TRIM_INTERVAL_S, trims: int | None = None
) -> None:
    """Trim every ``interval_s``; ``trims`` bounds them (``None``: until cancelled).

    Not only when glibc says it holds much free (``mallinfo2``): that walk of its free
    lists costs more than a trim with nothing to return, and trimmed chunks stay in those
    lists (only their pages go back), so the count cannot tell a trimmed heap from one that
    a burst took back and freed again.
    """
    for _ in itertools.count() if trims is None else range(trims):
        await asyncio.sleep(interval_s)
        lib.trim()


async def with_freed_memory_returned(main: Coroutine[Any, Any, T], lib: Glibc) -> T:
    """Run ``main`` with :func:`return_freed` beside it, stopped when ``main`` ends."""
    returner = asyncio.create_task(return_freed(lib), name="dagnats-return-freed-memory")
    try:
        return await main
    finally:
        returner.cancel()
        await asyncio.wait([returner])  # its cancellation, not the caller's
        log.debug("freed memory returned %d times", lib.trims)
