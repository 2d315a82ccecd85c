"""Methodology: freed memory given back (``dagnats.cli.memory``) against this machine's real
glibc (the tests that need it are skipped elsewhere). Memory is freed by dropping a large
list of ~1 KiB bytes objects (each its own glibc chunk, half of them kept so that the freed
chunks sit between live ones, out of reach of glibc's own trimming); ``return_freed`` is run
for a bounded number of checks and the trims it made are counted. The environment switch is
read with every value it accepts and one it refuses."""

from __future__ import annotations

import asyncio
import gc

import pytest

from dagnats.cli import loop, memory

LIB = memory.glibc()
needs_glibc = pytest.mark.skipif(LIB is None, reason="glibc with mallinfo2 (2.33+) only")
CHUNK_BYTES = 1000
CHUNKS = 8000  # 8 MB allocated, half of it freed between live chunks


def _fragment() -> list[bytes]:
    """About 4 MB freed in chunks between live ones; the survivors are returned."""
    chunks = [bytes(CHUNK_BYTES) for _ in range(CHUNKS)]
    del chunks[::2]
    return chunks


@needs_glibc
def test_glibc_reports_what_it_holds_free() -> None:
    assert LIB is not None
    before = LIB.free_bytes()
    survivors = _fragment()
    assert LIB.free_bytes() >= before + CHUNKS // 2 * CHUNK_BYTES // 2
    assert len(survivors) == CHUNKS // 2


@needs_glibc
def test_memory_freed_since_the_last_check_is_trimmed_once() -> None:
    lib = memory.glibc()  # its own count of trims
    assert lib is not None

    async def main() -> list[bytes]:
        checks = asyncio.create_task(
            memory.return_freed(lib, interval_s=0.05, threshold_bytes=2**20, checks=6)
        )
        await asyncio.sleep(0.01)  # the lowest point is read before the burst
        survivors = _fragment()
        await checks
        return survivors

    survivors = asyncio.run(main())
    # Trimmed chunks stay in glibc's free lists: one trim, not one per check after it.
    assert lib.trims == 1
    assert len(survivors) == CHUNKS // 2


@needs_glibc
def test_little_freed_memory_is_left_alone() -> None:
    assert LIB is not None
    lib = memory.glibc()
    assert lib is not None
    asyncio.run(memory.return_freed(lib, interval_s=0.01, threshold_bytes=2**30, checks=3))
    assert lib.trims == 0


def test_the_wrapped_coroutine_keeps_its_result_and_the_checks_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(memory.TRIM_ENV, raising=False)

    async def main() -> set[str]:
        await asyncio.sleep(0)
        return {t.get_name() for t in asyncio.all_tasks()}

    async def wrapped() -> tuple[set[str], set[str]]:
        during = await memory.with_freed_memory_returned(main())
        await asyncio.sleep(0)
        return during, {t.get_name() for t in asyncio.all_tasks()}

    during, after = asyncio.run(wrapped())
    name = "dagnats-return-freed-memory"
    assert (name in during) == (LIB is not None)
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
    for value, expected in (("on", True), ("off", False), ("", True)):
        monkeypatch.setenv(memory.TRIM_ENV, value)
        assert memory.wanted() is expected
