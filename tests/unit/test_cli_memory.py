"""Methodology: freed memory given back (``dagnats.cli.memory``) against this machine's real
glibc (the tests that need it are skipped elsewhere): ``return_freed`` is run for a bounded
number of trims, after memory was freed in whole pages, and the trims are counted. The
environment switch is read with every value it accepts and one it refuses. (How much a trim
returns depends on the whole process's heap, so it is measured in ``benchmarks/``.)"""

from __future__ import annotations

import asyncio
import gc
import inspect

import pytest

from dagnats.cli import loop, memory

LIB = memory.glibc()
needs_glibc = pytest.mark.skipif(LIB is None, reason="glibc only")


@needs_glibc
def test_the_returner_trims_at_each_interval() -> None:
    lib = memory.glibc()  # its own count of trims
    assert lib is not None
    pages = [bytearray(16 * 1024) for _ in range(500)]  # 8 MB, freed below between trims

    async def main() -> None:
        returner = asyncio.create_task(memory.return_freed(lib, interval_s=0.01, trims=3))
        await asyncio.sleep(0)
        del pages[::2]
        await returner

    asyncio.run(main())
    assert lib.trims == 3
    assert len(pages) == 250
    assert isinstance(lib.trim(), bool)  # nothing left to give back is not an error


@needs_glibc
def test_the_wrapped_coroutine_keeps_its_result_and_the_trims_stop() -> None:
    lib = memory.glibc()
    assert lib is not None

    async def main() -> set[str]:
        await asyncio.sleep(0)
        return {t.get_name() for t in asyncio.all_tasks()}

    async def wrapped() -> tuple[set[str], set[str]]:
        during = await memory.with_freed_memory_returned(main(), lib)
        await asyncio.sleep(0)
        return during, {t.get_name() for t in asyncio.all_tasks()}

    during, after = asyncio.run(wrapped())
    name = "dagnats-return-freed-memory"
    assert name in during
    assert name not in after


def test_a_long_running_process_returns_freed_memory_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def tasks() -> set[str]:
        return {t.get_name() for t in asyncio.all_tasks()}

    gc_state = (gc.get_threshold(), gc.isenabled())
    try:
        monkeypatch.setenv(memory.TRIM_ENV, "on")
        on = loop.run(tasks(), long_running=True)
        monkeypatch.setenv(memory.TRIM_ENV, "off")
        off = loop.run(tasks(), long_running=True)
    finally:
        gc.unfreeze()
        gc.set_threshold(*gc_state[0])
    assert ("dagnats-return-freed-memory" in on) == (LIB is not None)
    assert "dagnats-return-freed-memory" not in off


def test_an_unknown_switch_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(memory.TRIM_ENV, "maybe")
    with pytest.raises(
        ValueError, match=r"DAGNATS_MALLOC_TRIM must be one of on, off, got 'maybe'"
    ):
        memory.wanted()

    async def never() -> None:
        raise AssertionError("a refused setting must not start the process")

    coro = never()
    gc_state = gc.get_threshold()
    try:
        with pytest.raises(ValueError, match=r"DAGNATS_MALLOC_TRIM must be one of"):
            loop.run(coro, long_running=True)
    finally:
        gc.unfreeze()
        gc.set_threshold(*gc_state)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # no "never awaited"
    for value, expected in (("on", True), ("off", False), ("", True)):
        monkeypatch.setenv(memory.TRIM_ENV, value)
        assert memory.wanted() is expected
