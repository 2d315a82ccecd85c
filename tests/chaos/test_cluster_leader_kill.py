"""Methodology: a real 3-node JetStream cluster on loopback (tests.integration.cluster), every
stream and bucket R3, and ``dagnats engine``, ``dagnats api`` and ``dagnats worker``
processes given all three URLs. While three-step runs start at a steady pace, the node that
leads the history stream is SIGKILLed; a probe run measures the recovery (kill to a fresh
run completed on the two nodes left); then the node is started again on its store, and the
next round kills whichever node leads the history then. Every acknowledged run must
complete with 3, none lost or stuck, no event twice in a run's history; repeated handler
calls are counted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.chaos.cluster_parts import cluster_deployment, history_leader
from tests.chaos.harness import Figures, audit, probe, scale, start_load

RATE = 10.0
KILLS = 1
UP_S = 2.0


@pytest.mark.timeout(240 * scale())
async def test_killing_the_history_leader_of_a_cluster_loses_nothing(
    ledger: Path, figures: Figures
) -> None:
    started = time.monotonic()
    async with cluster_deployment(ledger) as dep:
        cluster, client = dep.cluster, dep.client
        wf, load = await start_load(client, rate=RATE)
        for k in range(KILLS * scale()):
            await asyncio.sleep(UP_S)
            node = await history_leader(dep.admin)
            cluster.kill_node(node)
            killed = time.monotonic()
            figures.kills += 1
            figures.recovery_s.append(await probe(client, wf, f"probe-{k}", killed))
            cluster.start_node(node)  # back on its store; it catches up as a follower
            await cluster.wait_ready()
        await load.stop()
        await audit(client, client.nc, figures, load.accepted, ledger=ledger)
    figures.seconds = time.monotonic() - started
    figures.check()
