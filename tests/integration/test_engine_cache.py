"""Methodology: the engine's snapshot cache holds running runs only. A real engine runs a
workflow whose step waits on an event the test controls: while it waits the run is cached;
once the run has ended (its terminal snapshot stored: the engine's second announcement) it
is not, and a waiter that comes later reads
the result from the stored snapshot. Under load (a store with more staged snapshots than
its bound), a staged snapshot may wait longer for its write, and flush still writes each."""

from __future__ import annotations

import asyncio
import json

import dagnats
from dagnats import protocol
from dagnats._nats.stores import BUSY_STAGED_RUNS, WRITE_DELAY_BUSY_S, WRITE_DELAY_S, RunStore
from dagnats.dag.machine.state import RunState
from dagnats.protocol.ended import parse_ended
from dagnats.protocol.ids import new_run_id
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
    assert engine.run_partitions.known(run.run_id)
    done = await dagnats_env.nc.subscribe(protocol.done_subject(run.run_id))
    release.set()
    assert await run.result(timeout=WAIT_S) == 2
    # The result comes before the snapshot is stored; the second announcement says stored.
    while not parse_ended((await done.next_msg(timeout=WAIT_S)).data, run.run_id).snapshot:
        pass
    await done.unsubscribe()
    assert not engine.parts.runs.cached(run.run_id)
    assert await engine.settle(timeout_s=WAIT_S)
    assert not engine.run_partitions.known(run.run_id)  # nothing of it outlives the run
    again = dagnats_env.client.run(run.run_id)
    assert await again.result(timeout=WAIT_S) == 2
    assert (await run.status()).status == "completed"


async def test_under_load_a_staged_snapshot_waits_longer_for_its_write(
    dagnats_env: DagnatsEnv,
) -> None:
    """More runs waiting for their write than BUSY_STAGED_RUNS: the next staged state may
    wait WRITE_DELAY_BUSY_S (most runs then write only their terminal state); once
    the writes are done the quiet delay is back. Every staged state is written by flush."""
    engine = dagnats_env.engine
    assert engine is not None
    store = RunStore(engine.parts.runs.kv, engine.parts.runs.payloads)
    assert store.write_delay_s() == WRITE_DELAY_S
    runs = [
        RunState(run_id=new_run_id(), workflow="busy", input=i) for i in range(BUSY_STAGED_RUNS + 1)
    ]
    for run in runs[:-1]:
        store.stage(run, 0)
    assert store.write_delay_s() == WRITE_DELAY_S  # as many as the bound: still quiet
    store.stage(runs[-1], 0)
    assert store.write_delay_s() == WRITE_DELAY_BUSY_S
    await asyncio.gather(*(store.flush(run.run_id) for run in runs))
    assert store.dirty == set()
    assert store.write_delay_s() == WRITE_DELAY_S
    stored = await engine.parts.runs.kv.get(runs[-1].run_id)
    assert stored.value is not None
    assert json.loads(stored.value)["input"] == BUSY_STAGED_RUNS


async def test_a_burst_of_finished_runs_leaves_no_partition_remembered(
    dagnats_env: DagnatsEnv,
) -> None:
    """The engine's per-run memo (engine.run_partitions) empties as runs end, so a burst
    leaves none of its run ids alive in the engine (they pinned the allocator's memory)."""
    worker = dagnats.Worker()

    @worker.task()
    async def inc(ctx: dagnats.TaskContext, n: int) -> int:
        return n + 1

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("cache-burst")
    wf.step("inc")
    wf.step("again", task="inc", depends_on=["inc"])
    engine = dagnats_env.engine
    assert engine is not None
    runs = await asyncio.gather(*(dagnats_env.client.start(wf, i) for i in range(40)))
    results = await asyncio.gather(*(r.result(timeout=WAIT_S) for r in runs))
    assert results == [i + 2 for i in range(40)]
    # Each result is announced by the actor that then stores the terminal snapshot:
    # once the actors running now have ended, every run has been written and forgotten.
    assert await engine.settle(timeout_s=WAIT_S)
    assert [r.run_id for r in runs if engine.run_partitions.known(r.run_id)] == []
