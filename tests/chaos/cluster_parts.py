"""A split deployment on a 3-node cluster for the chaos tests: the cluster (every stream and
bucket R3), ``engines`` ``dagnats engine`` processes, ``dagnats api`` and the chaos worker,
all given the three URLs, plus an admin connection and a client that outlive every fault."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagnats
from dagnats import protocol
from dagnats._nats.resources import setup_resources
from dagnats._nats.types import NatsClient
from tests.chaos.harness import Proc, client_for, worker_proc
from tests.integration.cluster import Cluster


@dataclass
class Deployment:
    cluster: Cluster
    admin: NatsClient
    client: dagnats.Client
    engines: list[Proc]
    others: list[Proc]


def engine_proc(url: str) -> Proc:
    return Proc.dagnats("engine", "--nats-url", url, "--replicas", "3", "--log-level", "warning")


async def history_leader(nc: NatsClient) -> int:
    """The index of the node that leads the history stream now."""
    info: Any = await nc.jetstream().stream_info(protocol.HISTORY_STREAM)
    return int(str(info.cluster.leader).removeprefix("n"))


@contextlib.asynccontextmanager
async def cluster_deployment(ledger: Path, *, engines: int = 1) -> AsyncIterator[Deployment]:
    """Everything started (not yet known to be ready); everything stopped at the end."""
    async with Cluster() as cluster:
        url = cluster.url
        admin = await cluster.connect()
        await setup_resources(admin.jetstream(), replicas=3)
        dep = Deployment(
            cluster=cluster,
            admin=admin,
            client=await client_for(url),
            engines=[engine_proc(url) for _ in range(engines)],
            others=[
                Proc.dagnats("api", "--nats-url", url, "--replicas", "3", "--log-level", "warning"),
                worker_proc(url, ledger, attr="cluster_worker"),
            ],
        )
        try:
            for p in [*dep.engines, *dep.others]:
                await p.start()
            yield dep
        finally:
            await dep.client.close()
            for p in [*dep.engines, *dep.others]:
                await p.stop()
            await admin.close()
