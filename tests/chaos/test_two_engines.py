"""Methodology: a split deployment with two ``dagnats engine`` processes on one nats-server
(with ``dagnats api`` and ``dagnats worker``). While three-step runs start at a steady pace,
one engine is SIGKILLed and started again, ``KILLS`` times, the two in turn; the other must
take over the killed one's runs (partition leases, DESIGN.md §10: handed over within the
lease TTL). A probe run after each kill measures the recovery. Every acknowledged run must
complete with 3, none lost or stuck, no event twice in a run's history.

Before partitioned engines, two engines on one server stalled runs with no fault at all
(issue 12: 128 of 300 never finished); this test failed on its first probe run then.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dagnats.server import EmbeddedNats
from tests.chaos.harness import (
    Figures,
    Proc,
    audit,
    client_for,
    probe,
    scale,
    start_load,
    worker_proc,
)

RATE = 10.0
KILLS = 2
UP_S = 2.0
SETTLE_S = 30.0  # past the lease TTL (10 s) with room
PROBE_S = 20.0


@pytest.mark.timeout(180 * scale())
async def test_two_engines_with_one_killed_lose_nothing(
    tmp_path: Path, ledger: Path, figures: Figures
) -> None:
    started = time.monotonic()
    server = EmbeddedNats(port=0, data_dir=tmp_path / "nats")
    await server.start()
    url = server.url
    engines = [Proc.dagnats("engine", "--nats-url", url, "--log-level", "warning") for _ in "ab"]
    others = [
        Proc.dagnats("api", "--nats-url", url, "--log-level", "warning"),
        worker_proc(url, ledger),
    ]
    client = await client_for(url)
    try:
        for p in [*engines, *others]:
            await p.start()
        wf, load = await start_load(client, rate=RATE, timeout_s=PROBE_S)
        for k in range(KILLS * scale()):
            await asyncio.sleep(UP_S)
            victim = engines[k % 2]
            await victim.kill()
            killed = time.monotonic()
            figures.kills += 1
            recovery = await probe(client, wf, f"probe-{k}", killed, timeout_s=PROBE_S)
            figures.recovery_s.append(recovery)
            await victim.start()
        await load.stop()
        await audit(client, client.nc, figures, load.accepted, ledger=ledger, settle_s=SETTLE_S)
    finally:
        await client.close()
        for p in [*engines, *others]:
            await p.stop()
        await server.close()
    figures.seconds = time.monotonic() - started
    figures.check()
