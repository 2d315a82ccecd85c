"""Methodology: one run's held deliveries are bounded in the engine. A map of ``ITEMS`` items
whose handlers all wait at a gate until every one of them is running, then return at once:
``ITEMS`` completions of one run reach the engine in a burst, far more than the run's bound
(``BOUND``, set low). The engine must hold at most ``BOUND`` of them at any time (its
``queue_peak``), give the excess back (``given_back`` > 0), and still complete the run with
every item's output in order: what it gave back is applied from the history, in order, by
the run's next event. A second engine with the default bound runs a plain map of 3,000
items (one that once starved when a per-run bound naked its fan-in for ever)."""

from __future__ import annotations

import asyncio

import dagnats
from dagnats.testing import DagnatsEnv

ITEMS = 1500
BOUND = 32
WAIT_S = 90.0


def _gated_map(env: DagnatsEnv, items: int) -> dagnats.Workflow:
    worker = dagnats.Worker(concurrency=items)
    gate = asyncio.Event()
    running = 0

    @worker.task()
    async def source(ctx: dagnats.TaskContext, n: int) -> list[int]:
        return list(range(n))

    @worker.task()
    async def held(ctx: dagnats.TaskContext, i: int) -> int:
        nonlocal running
        running += 1
        if running >= items:
            gate.set()
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return i * 2

    env.add_worker(worker)
    wf = dagnats.Workflow("flood")
    src = wf.step("source")
    wf.map("held", depends_on=[src], max_items=items)
    return wf


async def test_a_flooded_run_stays_bounded_and_completes() -> None:
    async with DagnatsEnv.start(engine=False) as env:
        engine = await env.start_engine(max_queued_per_run=BOUND)
        wf = _gated_map(env, ITEMS)
        await env.wait_workers_ready()
        run = await env.client.start(wf, ITEMS)
        assert await run.result(timeout=WAIT_S) == [i * 2 for i in range(ITEMS)]
        assert engine.queue_peak <= BOUND
        assert engine.given_back > 0


async def test_a_map_of_3000_items_completes_with_the_default_bound(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker(concurrency=64)

    @worker.task()
    async def source(ctx: dagnats.TaskContext, n: int) -> list[int]:
        return list(range(n))

    @worker.task()
    async def plus(ctx: dagnats.TaskContext, i: int) -> int:
        return i + 1

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("wide")
    src = wf.step("source")
    wf.map("plus", depends_on=[src], max_items=3000)
    run = await dagnats_env.client.start(wf, 3000)
    assert await run.result(timeout=WAIT_S) == [i + 1 for i in range(3000)]
    engine = dagnats_env.engine
    assert engine is not None and engine.queue_peak <= engine.max_queued_per_run
