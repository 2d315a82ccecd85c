"""Methodology: the engine and API in this process (``DagnatsEnv``, a real nats-server) and two
real ``dagnats worker`` processes (ack wait 2 s). While three-step runs start at a steady
pace, the workers are SIGKILLed in turn, ``KILLS`` times, each started again at once: the
tasks a killed worker held come back to the other after their ack wait. A probe run after
each kill measures the recovery. Every acknowledged run must complete with 3, none lost or
stuck, no event twice in a run's history; repeated handler calls (a killed worker's
finished-but-unacknowledged tasks) are counted from the ledger. ``--chaos-scale`` multiplies
the kills."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dagnats.testing import DagnatsEnv
from tests.chaos.harness import (
    Figures,
    audit,
    probe,
    scale,
    start_load,
    worker_proc,
)

RATE = 10.0
KILLS = 4
UP_S = 1.5  # how long a worker runs between kills


@pytest.mark.timeout(180 * scale())
async def test_worker_sigkill_loop_loses_nothing(ledger: Path, figures: Figures) -> None:
    started = time.monotonic()
    async with DagnatsEnv.start() as env:
        workers = [worker_proc(env.url, ledger) for _ in range(2)]
        try:
            for w in workers:
                await w.start()
            wf, load = await start_load(env.client, rate=RATE)
            for k in range(KILLS * scale()):
                await asyncio.sleep(UP_S)  # under load for a while
                victim = workers[k % 2]
                await victim.kill()
                killed = time.monotonic()
                figures.kills += 1
                await victim.start()
                figures.recovery_s.append(await probe(env.client, wf, f"probe-{k}", killed))
            await load.stop()
            await audit(env.client, env.nc, figures, load.accepted, ledger=ledger)
        finally:
            for w in workers:
                await w.stop()
    figures.seconds = time.monotonic() - started
    figures.check()
