"""Methodology: a map whose fan-in is far larger than one NATS message, run end to end on a
real nats-server; the engine must pass the assembled input by reference and finish the run."""

from __future__ import annotations

import dagnats
from dagnats.testing import DagnatsEnv


async def test_fan_in_larger_than_a_message(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker(concurrency=64)

    @worker.task()
    async def items(ctx: dagnats.TaskContext, n: int) -> list[int]:
        return list(range(n))

    @worker.task()
    async def pad(ctx: dagnats.TaskContext, i: int) -> str:
        return f"{i:06d}" + "x" * 400  # 4000 x ~410 bytes: ~1.6 MiB once gathered

    @worker.task()
    async def total(ctx: dagnats.TaskContext, parts: list[str]) -> int:
        return sum(len(p) for p in parts)

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("big-fan-in")
    src = wf.step("items")
    padded = wf.map("pad", depends_on=[src], max_items=5000)
    wf.step("total", depends_on=[padded])
    run = await dagnats_env.client.start(wf, 4000)
    assert await run.result(timeout=90) == 4000 * 406


async def test_fan_in_of_large_outputs_offloaded_twice(dagnats_env: DagnatsEnv) -> None:
    # Each instance output is above 256 KiB (offloaded by the worker), and the gathered
    # list of references is re-offloaded by the engine: the next step must see the values.
    worker = dagnats.Worker()

    @worker.task()
    async def sizes(ctx: dagnats.TaskContext) -> list[int]:
        return [300_000, 200_000, 200_000]

    @worker.task()
    async def blob(ctx: dagnats.TaskContext, n: int) -> str:
        return "y" * n

    @worker.task()
    async def lengths(ctx: dagnats.TaskContext, parts: list[str]) -> list[int]:
        return [len(p) for p in parts]

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("nested-refs")
    src = wf.step("sizes")
    blobs = wf.map("blob", depends_on=[src])
    wf.step("lengths", depends_on=[blobs])
    run = await dagnats_env.client.start(wf)
    assert await run.result(timeout=60) == [300_000, 200_000, 200_000]
