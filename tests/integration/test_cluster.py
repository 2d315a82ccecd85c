"""Methodology: a real 3-node JetStream cluster on loopback (tests.integration.cluster). Every
stream, bucket and the payload object store is created with the replicas asked; a part that
asks for nothing (a worker with defaults: it used to update every stream in place to R1) or
for fewer leaves them as they are; a part that asks for more raises them and warns. Then the
node leading the history stream is killed and a run still completes on the two left."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

import dagnats
from dagnats import protocol
from dagnats._nats.resources import BUCKETS, setup_resources, stream_configs
from dagnats._nats.types import NatsClient
from dagnats.testing import DagnatsEnv
from tests.integration.cluster import Cluster

WAIT_S = 30.0
ALL = [str(c.name) for c in stream_configs()] + [f"KV_{b.name}" for b in BUCKETS]
ALL.append(f"OBJ_{protocol.OBJ_PAYLOADS}")


async def replicas(nc: NatsClient) -> dict[str, int]:
    js = nc.jetstream()
    return {name: (await js.stream_info(name)).config.num_replicas or 1 for name in ALL}


async def test_replicas_are_created_as_asked_and_never_lowered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Cluster() as cluster:
        nc = await cluster.connect()
        try:
            await setup_resources(nc.jetstream(), replicas=3)
            assert set((await replicas(nc)).values()) == {3}
            await setup_resources(nc.jetstream())  # a worker with defaults
            await setup_resources(nc.jetstream(), replicas=1)  # or one that asks for one
            assert set((await replicas(nc)).values()) == {3}
        finally:
            await nc.close()


async def test_fewer_replicas_than_asked_are_raised_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Cluster() as cluster:
        nc = await cluster.connect()
        try:
            await setup_resources(nc.jetstream())
            assert set((await replicas(nc)).values()) == {1}
            with caplog.at_level(logging.WARNING, logger="dagnats._nats.resources"):
                await setup_resources(nc.jetstream(), replicas=3)
            assert set((await replicas(nc)).values()) == {3}
            raised = [r for r in caplog.records if "raising it to 3" in r.getMessage()]
            assert len(raised) == len(ALL)
        finally:
            await nc.close()


async def _leader(nc: NatsClient, stream: str) -> str:
    info: Any = await nc.jetstream().stream_info(stream)
    return str(info.cluster.leader)


async def test_a_run_completes_after_the_history_leader_is_killed() -> None:
    async with Cluster() as cluster:
        nc = await cluster.connect()
        await setup_resources(nc.jetstream(), replicas=3)
        leader = await _leader(nc, protocol.HISTORY_STREAM)
        await nc.close()
        async with DagnatsEnv.start(nats_url=cluster.url) as env:
            worker = dagnats.Worker(replicas=3)

            @worker.task()
            async def double(ctx: dagnats.TaskContext, x: int) -> int:
                return x * 2

            env.add_worker(worker)
            wf = dagnats.Workflow("cluster")
            wf.step("a", task="double")
            await env.wait_workers_ready()
            assert await (await env.client.start(wf, 2)).result(timeout=WAIT_S) == 4
            cluster.kill_node(int(leader.removeprefix("n")))
            # The R3 history elects a new leader among the two left; then a run completes.
            started = time.monotonic()
            run = await _start_when_possible(env, wf, started + WAIT_S)
            assert await run.result(timeout=WAIT_S) == 42
            assert time.monotonic() - started < WAIT_S


async def _start_when_possible(
    env: DagnatsEnv, wf: dagnats.Workflow, deadline: float
) -> dagnats.RunHandle:
    """Start (the same idempotency key each time) until the cluster accepts it."""
    while True:
        try:
            return await env.client.start(wf, 21, idempotency_key="after-kill")
        except dagnats.ApiError:
            if time.monotonic() > deadline:
                raise
