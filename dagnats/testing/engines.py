"""Several engines in one test process, each on its own NATS connection (ADR 0013).

``start_engines(url, 3)`` starts three engines that share the partitions as three
``dagnats engine`` processes would; :func:`kill_engine` ends one as a SIGKILL would (its
connection dropped, nothing acked, written or released: its leases lapse after their TTL);
:func:`pause_engine` stops its lease renewals as a SIGSTOP would look to the others, and
:func:`wait_partitions` waits until the live engines hold every partition between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from dagnats._nats.closing import close_within
from dagnats._nats.connection import connect
from dagnats.engine import Engine

WAIT_S = 20.0


async def start_engine(url: str, **options: Any) -> Engine:
    """An engine on a connection of its own (``options`` go to ``Engine``)."""
    nc = await connect(url, max_reconnect_attempts=-1, reconnect_time_wait_s=0.1)
    engine = Engine(nc, **options)
    await engine.start()
    return engine


async def stop_engine(engine: Engine) -> None:
    """A graceful stop (partitions handed over at once), then its connection closed."""
    await engine.stop()
    with contextlib.suppress(Exception):
        await close_within(engine.nc)


async def kill_engine(engine: Engine) -> None:
    """End ``engine`` as a killed process: connection dropped first, no graceful stop."""
    with contextlib.suppress(Exception):
        await close_within(engine.nc)
    await engine.kill()


def pause_engine(engine: Engine) -> None:
    """Stop ``engine``'s lease renewals (what a paused process looks like to the others)."""
    engine.leases.renewing = False


def resume_engine(engine: Engine) -> None:
    engine.leases.renewing = True


def holders(engines: Sequence[Engine]) -> dict[int, str]:
    """partition -> engine id, of the partitions each engine believes it holds now."""
    return {p: e.engine_id for e in engines if e.running for p in e.leases.held}


async def wait_partitions(engines: Sequence[Engine], *, timeout_s: float = WAIT_S) -> float:
    """Wait until the running engines of ``engines`` hold every partition, each at least
    one when there are enough; returns the seconds it took. TimeoutError after
    ``timeout_s`` naming who holds what."""
    live = [e for e in engines if e.running]
    if not live:
        raise ValueError("no running engine to hold the partitions")
    n = live[0].partitions
    start = time.monotonic()

    def settled() -> bool:
        held = [e.leases.held for e in live]
        every = sorted(p for h in held for p in h) == list(range(n))
        return every and all(h or len(live) > n for h in held)

    try:
        async with asyncio.timeout(timeout_s):
            while not settled():
                for e in live:
                    e.leases.changed.clear()
                waits = [asyncio.create_task(e.leases.changed.wait()) for e in live]
                try:
                    # A lease lapsing changes nothing by itself: look again at each renewal.
                    await asyncio.wait(
                        waits, timeout=live[0].leases.renew_s, return_when="FIRST_COMPLETED"
                    )
                finally:
                    for w in waits:
                        w.cancel()
    except TimeoutError:
        raise TimeoutError(
            f"partitions not all held within {timeout_s}s: {holders(live)}"
        ) from None
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def engines(url: str, count: int, **options: Any) -> AsyncIterator[list[Engine]]:
    """``count`` engines sharing the partitions; each stopped at the end (if still up)."""
    started: list[Engine] = []
    try:
        for _ in range(count):
            started.append(await start_engine(url, **options))
        await wait_partitions(started)
        yield started
    finally:
        for e in started:
            if e.running:
                with contextlib.suppress(Exception):
                    await stop_engine(e)
