"""Methodology: the engine's snapshot cache holds running runs only. A real engine runs a
workflow whose step waits on an event the test controls: while it waits the run is cached;
once the run has ended (its terminal snapshot stored: the engine's second announcement) it
is not, and a waiter that comes later reads
the result from the stored snapshot."""

from __future__ import annotations

import asyncio

import dagnats
from dagnats import protocol
from dagnats.protocol.ended import parse_ended
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S


async def test_a_finished_run_leaves_the_snapshot_cache(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    entered = asyncio.Event()
    release = asyncio.Event()

    @worker.task()
    async def gate(ctx: dagnats.TaskContext, n: int) -> int:
        entered.set()
        await asyncio.wait_for(release.wait(), WAIT_S)
        return n + 1

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("cache-gate")
    wf.step("gate")
    engine = dagnats_env.engine
    assert engine is not None
    run = await dagnats_env.client.start(wf, 1)
    await asyncio.wait_for(entered.wait(), WAIT_S)
    assert engine.parts.runs.cached(run.run_id)  # running: kept for its next event
    done = await dagnats_env.nc.subscribe(protocol.done_subject(run.run_id))
    release.set()
    assert await run.result(timeout=WAIT_S) == 2
    # The result comes before the snapshot is stored; the second announcement says stored.
    while not parse_ended((await done.next_msg(timeout=WAIT_S)).data, run.run_id).snapshot:
        pass
    await done.unsubscribe()
    assert not engine.parts.runs.cached(run.run_id)
    again = dagnats_env.client.run(run.run_id)
    assert await again.result(timeout=WAIT_S) == 2
    assert (await run.status()).status == "completed"
