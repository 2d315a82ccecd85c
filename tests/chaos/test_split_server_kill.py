"""Methodology: a split deployment, each part its own process: a nats-server (started by
this test, its store in a temporary directory), ``dagnats engine``, ``dagnats api`` and
``dagnats worker``. While three-step runs start at a steady pace, the nats-server is
SIGKILLed and started again on the same port and store, ``KILLS`` times; the three dagnats
processes must reconnect on their own. A probe run after each restart measures the recovery.
Every acknowledged run must complete with 3, none lost or stuck, no event twice in a run's
history; repeated handler calls are counted (a work-queue stream forgets message ids across
a restart: ADR 0014)."""

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
KILLS = 3
UP_S = 2.0


@pytest.mark.timeout(180 * scale())
async def test_nats_server_sigkill_in_a_split_deployment_loses_nothing(
    tmp_path: Path, ledger: Path, figures: Figures
) -> None:
    started = time.monotonic()
    server = EmbeddedNats(port=0, data_dir=tmp_path / "nats")
    await server.start()
    url = server.url
    parts = [
        Proc.dagnats("engine", "--nats-url", url, "--log-level", "warning"),
        Proc.dagnats("api", "--nats-url", url, "--log-level", "warning"),
        worker_proc(url, ledger),
    ]
    client = await client_for(url)
    try:
        for p in parts:
            await p.start()
        wf, load = await start_load(client, rate=RATE)
        for k in range(KILLS * scale()):
            await asyncio.sleep(UP_S)
            await server.stop(kill=True)
            killed = time.monotonic()
            figures.kills += 1
            await server.start()
            figures.recovery_s.append(await probe(client, wf, f"probe-{k}", killed))
        await load.stop()
        await audit(client, client.nc, figures, load.accepted, ledger=ledger)
    finally:
        await client.close()
        for p in parts:
            await p.stop()
        await server.close()
    figures.seconds = time.monotonic() - started
    figures.check()
