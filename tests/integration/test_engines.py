"""Several engines on one server: partitions shared by leases, handed over on a kill.

Each engine here has its own NATS connection (``dagnats.testing.engines``), as separate
processes would; a kill drops that connection without a graceful stop.
"""

from __future__ import annotations

import asyncio

import dagnats
from dagnats._nats.connection import connect
from dagnats.engine import Engine
from dagnats.testing import DagnatsEnv

RUNS = 300
RESULT_S = 120.0


def three_steps() -> tuple[dagnats.Worker, dagnats.Workflow]:
    worker = dagnats.Worker(name="engines", concurrency=64)

    @worker.task()
    async def one(ctx: dagnats.TaskContext, n: int) -> int:
        return n + 1

    @worker.task()
    async def two(ctx: dagnats.TaskContext, n: int) -> int:
        return n * 2

    @worker.task()
    async def three(ctx: dagnats.TaskContext, n: int) -> int:
        return n - 1

    wf = dagnats.Workflow("three-steps")
    a = wf.step(one)
    b = wf.step(two, depends_on=[a])
    wf.step(three, depends_on=[b])
    return worker, wf


async def test_two_engines_complete_every_run() -> None:
    async with DagnatsEnv.start() as env:
        second = Engine(await connect(env.url))
        await second.start()
        try:
            worker, wf = three_steps()
            env.add_worker(worker)
            await env.wait_workers_ready()
            runs = [await env.client.start(wf, i) for i in range(RUNS)]
            results = await asyncio.wait_for(
                asyncio.gather(*(r.result(timeout=RESULT_S) for r in runs)), RESULT_S + 10
            )
            assert results == [(i + 1) * 2 - 1 for i in range(RUNS)]
        finally:
            await second.stop()
            await second.nc.close()
