"""Methodology: an event given back out of order is never hidden by a cached state.

The engine trusts its cached state of a run (no history read) only while it has seen that
run's events in stream order: once it has caught a run up from the history for an event
delivered the first time, the consumer hands it every later event in order. Events that
come again (given back by an engine that lost its partition, or by a pull that went
unanswered) come out of order, so the next event after one of them reads the history.

The test makes the hole itself on a real server: with no engine running, three parallel
steps complete (events a, b, c in the history). The test pulls a and b from the partition's
durable consumer as a departing engine would have, gives a back at once and keeps b for a
while. The next engine gets a again (a redelivery) and then c (a first delivery); b comes
back only after both. Before the fix, c was applied to the state cached from a, b's
redelivery looked applied (its seq below the state's) and the run never finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

import dagnats
from dagnats import protocol
from dagnats._nats.types import Msg
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event
from dagnats.protocol.partitions import engine_consumer, partition_of
from dagnats.testing import DagnatsEnv, wait_event
from dagnats.testing.engines import start_engine, stop_engine
from tests.integration.run_helpers import WAIT_S

HOLD_S = 3.0  # how long the departing "engine" keeps b before giving it back


class Gates:
    """One gate per parallel step: each handler returns once the test opens its gate."""

    def __init__(self) -> None:
        self.entered = {s: asyncio.Event() for s in "abc"}
        self.open = {s: asyncio.Event() for s in "abc"}


def fan_in(gates: Gates | None, steps: str = "abc") -> tuple[dagnats.Worker, dagnats.Workflow]:
    """Parallel ``steps`` joined by one more; each waits for its gate when ``gates``."""
    worker = dagnats.Worker(name="order", concurrency=64)

    @worker.task()
    async def branch(ctx: dagnats.TaskContext, n: int) -> int:
        if gates is not None:
            gates.entered[ctx.step_id].set()
            await asyncio.wait_for(gates.open[ctx.step_id].wait(), WAIT_S)
        return n

    @worker.task()
    async def join(ctx: dagnats.TaskContext, n: object) -> str:
        return "joined"

    wf = dagnats.Workflow(f"order-fan-in-{len(steps)}")
    wf.step(join, depends_on=[wf.step(s, task=branch) for s in steps])
    return worker, wf


@pytest.fixture
async def env() -> AsyncIterator[DagnatsEnv]:
    async with DagnatsEnv.start(engine=False) as started:
        yield started


async def test_a_redelivered_event_does_not_hide_a_later_one(env: DagnatsEnv) -> None:
    gates = Gates()
    worker, wf = fan_in(gates)
    env.add_worker(worker)
    await env.wait_workers_ready()
    first = await start_engine(env.url)
    run = await env.client.start(wf, 1)
    await asyncio.wait_for(asyncio.gather(*(g.wait() for g in gates.entered.values())), WAIT_S)
    await stop_engine(first)  # no engine while the hole is made
    for step in "abc":  # completions in this order: seqs a < b < c
        gates.open[step].set()
        await wait_event(run, ev.STEP_COMPLETED, step_id=step, timeout=WAIT_S)

    js = env.nc.jetstream()
    part = partition_of(run.run_id, first.partitions)
    pull = await js.pull_subscribe_bind(engine_consumer(part), protocol.HISTORY_STREAM)
    taken: list[tuple[str | None, Msg]] = []
    while len(taken) < 2:  # the run's earlier records come first: skip them
        for msg in await pull.fetch(1, timeout=WAIT_S):
            event = Event.from_bytes(msg.data, msg.metadata.sequence.stream)
            if event.type == ev.STEP_COMPLETED:
                taken.append((event.step_id, msg))
            else:
                await msg.ack()
    assert [step for step, _ in taken] == ["a", "b"]
    await taken[0][1].nak()  # a comes again at once
    await taken[1][1].nak(delay=HOLD_S)  # b only after c has been delivered
    await pull.unsubscribe()

    second = await start_engine(env.url)
    try:
        assert await run.result(timeout=WAIT_S) == "joined"
    finally:
        await stop_engine(second)


CHURN_RUNS = 200
CHURN_ROUNDS = 30


async def test_runs_finish_through_a_lone_engine_losing_and_retaking_its_leases(
    env: DagnatsEnv,
) -> None:
    """What a saturated event loop did to a lone engine: its leases lapsed while events
    were being applied, and the next round took them back with new epochs. Here the test
    drops and retakes every partition over and over under load."""
    worker, wf = fan_in(None, "abcd")
    env.add_worker(worker)
    await env.wait_workers_ready()
    engine = await start_engine(env.url)
    try:
        first = await env.client.start(wf, 0)  # registers the workflow
        starting = asyncio.gather(*(env.client.start(wf, i) for i in range(1, CHURN_RUNS)))
        for _ in range(CHURN_ROUNDS):  # while the runs start and go on
            for part in engine.leases.held:
                await engine.leases.lose(part, "dropped by the test")
            await engine.leases.tick()  # its own leases, still in KV: taken back at once
            await asyncio.sleep(0.01)
        assert sorted(engine.leases.held) == list(range(engine.partitions))
        runs = [first, *await asyncio.wait_for(starting, WAIT_S)]
        settled = time.monotonic()
        results = await asyncio.wait_for(
            asyncio.gather(*(r.result(timeout=WAIT_S * 4) for r in runs)), WAIT_S * 5
        )
        assert results == ["joined"] * CHURN_RUNS
        print(f"all done {time.monotonic() - settled:.2f}s after the last retake")
    finally:
        await stop_engine(engine)
