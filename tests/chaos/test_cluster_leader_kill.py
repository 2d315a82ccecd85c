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
from typing import Any

import pytest

from dagnats import protocol
from dagnats._nats.resources import setup_resources
from dagnats._nats.types import NatsClient
from tests.chaos.harness import (
    Figures,
    Load,
    Proc,
    audit,
    client_for,
    probe,
    scale,
    three_steps,
    worker_proc,
)
from tests.integration.cluster import Cluster

RATE = 10.0
KILLS = 1
UP_S = 2.0


async def history_leader(nc: NatsClient) -> int:
    info: Any = await nc.jetstream().stream_info(protocol.HISTORY_STREAM)
    return int(str(info.cluster.leader).removeprefix("n"))


@pytest.mark.timeout(240 * scale())
async def test_killing_the_history_leader_of_a_cluster_loses_nothing(
    ledger: Path, figures: Figures
) -> None:
    started = time.monotonic()
    async with Cluster() as cluster:
        url = cluster.url
        admin = await cluster.connect()
        await setup_resources(admin.jetstream(), replicas=3)
        parts = [
            Proc.dagnats("engine", "--nats-url", url, "--replicas", "3", "--log-level", "warning"),
            Proc.dagnats("api", "--nats-url", url, "--replicas", "3", "--log-level", "warning"),
            worker_proc(url, ledger, attr="cluster_worker"),
        ]
        client = await client_for(url)
        try:
            for p in parts:
                await p.start()
            wf = three_steps()
            await probe(client, wf, "probe-first", time.monotonic())
            load = Load(client, wf, rate=RATE)
            load.start()
            for k in range(KILLS * scale()):
                await asyncio.sleep(UP_S)
                node = await history_leader(admin)
                cluster.kill_node(node)
                killed = time.monotonic()
                figures.kills += 1
                figures.recovery_s.append(await probe(client, wf, f"probe-{k}", killed))
                cluster.start_node(node)  # back on its store; it catches up as a follower
                await cluster.wait_ready()
            await load.stop()
            await audit(client, client.nc, figures, load.accepted, ledger=ledger)
        finally:
            await client.close()
            for p in parts:
                await p.stop()
            await admin.close()
    figures.seconds = time.monotonic() - started
    figures.check()
