"""Freed memory given back to the system by long-running processes (glibc's allocator).

After a burst (1,000 runs in flight) the engine frees what those runs held, but glibc's
``malloc`` keeps freed chunks that sit between live ones: its own trimming returns only the
top of the heap. Issue 10 measured about 5 MiB held that way after 20,000 finished runs.
``malloc_trim(0)`` returns every free page, wherever it is. No maintained library offers it,
so it is called through ``ctypes`` (ADR 0016, item 11): a check each ``CHECK_INTERVAL_S``
reads how much glibc holds free (``mallinfo2``, a walk of its free lists) and trims when
``TRIM_FREE_BYTES`` more than at its lowest since the last trim were freed. Elsewhere (macOS,
musl, glibc before 2.33) it does nothing; ``DAGNATS_MALLOC_TRIM=off`` turns it off.

Python's own small-object arenas (1 MiB each) are not glibc's to return: an arena goes back
only once every object in it is freed, which this does not change.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

TRIM_ENV = "DAGNATS_MALLOC_TRIM"  # "on" (or unset): trim when glibc is found; "off": never
TRIM_MODES = ("on", "off")
CHECK_INTERVAL_S = 0.5
TRIM_FREE_BYTES = 2**20  # freed since the lowest point: trimmed above this


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (every field a ``size_t``), summed over its arenas."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class Glibc:
    """The two calls of glibc's allocator this module uses."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._mallinfo2 = lib.mallinfo2
        self._mallinfo2.restype = _MallInfo2
        self._mallinfo2.argtypes = []
        self._trim = lib.malloc_trim
        self._trim.restype = ctypes.c_int
        self._trim.argtypes = [ctypes.c_size_t]
        self.trims = 0
        """How many times :meth:`trim` ran."""

    def free_bytes(self) -> int:
        """Bytes glibc holds freed, in every arena (``fordblks``)."""
        return int(self._mallinfo2().fordblks)

    def trim(self) -> bool:
        """Give every free page back (``malloc_trim(0)``); whether any was."""
        self.trims += 1
        return bool(self._trim(0))


def glibc() -> Glibc | None:
    """The process's glibc allocator, or ``None`` (another C library, or too old)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return Glibc(ctypes.CDLL(name))
    except (OSError, AttributeError):  # not glibc, or no mallinfo2 (glibc < 2.33)
        return None


def wanted() -> bool:
    mode = os.environ.get(TRIM_ENV) or "on"
    if mode not in TRIM_MODES:
        raise ValueError(f"{TRIM_ENV} must be one of {', '.join(TRIM_MODES)}, got {mode!r}")
    return mode == "on"


async def return_freed(
    lib: Glibc,
    *,
    interval_s: float = CHECK_INTERVAL_S,
    threshold_bytes: int = TRIM_FREE_BYTES,
    checks: int | None = None,
) -> None:
    """Every ``interval_s``, trim when glibc holds ``threshold_bytes`` more free than at
    its lowest since the last trim; ``checks`` bounds the checks (``None``: until cancelled).

    Trimmed chunks stay free in glibc's lists (only their pages go back), so the free total
    alone would ask again every second: what counts is memory freed since, which a burst
    that ended leaves (it took free chunks, then gave them back with more).
    """
    low = lib.free_bytes()
    done = 0
    while checks is None or done < checks:
        await asyncio.sleep(interval_s)
        done += 1
        free = lib.free_bytes()
        if free - low > threshold_bytes:
            lib.trim()
            log.debug("returned freed memory: %d KiB freed since", (free - low) // 1024)
            low = lib.free_bytes()
        else:
            low = min(low, free)


async def with_freed_memory_returned(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` with :func:`return_freed` beside it (when glibc is found and
    ``DAGNATS_MALLOC_TRIM`` is not ``off``)."""
    lib = glibc() if wanted() else None
    if lib is None:
        return await main
    returner = asyncio.create_task(return_freed(lib), name="dagnats-return-freed-memory")
    try:
        return await main
    finally:
        returner.cancel()
        await asyncio.wait([returner])  # its cancellation, not the caller's
        log.debug("freed memory returned %d times", lib.trims)
