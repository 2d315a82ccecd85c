"""Fault injection: each fault of ``env.faults`` and the guarantee it lets a user test.

Methodology: a real environment per test; each fault is armed before the run it hits, the
run's outcome, the handlers' calls (with their idempotency keys and attempts) and the stored
state are checked afterwards. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import dagnats
from dagnats.testing import DagnatsEnv, wait_event, wait_state

RESULT_S = 20.0


class Calls:
    """What the handlers saw: (task, idempotency key, attempt) per call."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def record(self, ctx: dagnats.TaskContext) -> None:
        self.seen.append((ctx.task, ctx.idempotency_key, ctx.attempt))

    def count(self) -> Counter[str]:
        return Counter(task for task, _, _ in self.seen)

    def of(self, task: str) -> list[tuple[str, str, int]]:
        return [c for c in self.seen if c[0] == task]


def chain(calls: Calls, *, slow_s: float = 0.0) -> tuple[dagnats.Worker, dagnats.Workflow]:
    worker = dagnats.Worker(name="faults", concurrency=4)

    @worker.task()
    async def reserve(ctx: dagnats.TaskContext, order: int) -> int:
        calls.record(ctx)
        return order

    @worker.task()
    async def charge(ctx: dagnats.TaskContext, order: int) -> int:
        calls.record(ctx)
        await asyncio.sleep(slow_s)
        return order * 10

    @worker.task()
    async def ship(ctx: dagnats.TaskContext, amount: int) -> str:
        calls.record(ctx)
        return f"shipped {amount}"

    wf = dagnats.Workflow("fault-chain")
    r = wf.step(reserve)
    c = wf.step(charge, depends_on=[r])
    wf.step(ship, depends_on=[c])
    return worker, wf


@pytest.mark.parametrize("after_events", [1, 2, 4])
async def test_a_crashed_engine_is_taken_over_and_no_step_runs_twice(after_events: int) -> None:
    calls = Calls()
    async with DagnatsEnv.start() as env:
        worker, wf = chain(calls)
        env.add_worker(worker)
        await env.wait_workers_ready()
        crashed = env.engine
        env.faults.crash_engine(after_events=after_events)
        run = await env.client.start(wf, 7)
        await env.faults.wait_taken_over()
        assert await run.result(timeout=RESULT_S) == "shipped 70"
        assert env.engine is not crashed and env.faults.crashes == 1
        assert calls.count() == {"reserve": 1, "charge": 1, "ship": 1}
        state = await wait_state(run, "completed")
        assert all(s.attempts == 1 for s in state.steps.values())


async def test_a_crash_while_a_timer_waits_loses_no_timer() -> None:
    calls = Calls()
    async with DagnatsEnv.start(time_skipping=True) as env:
        worker, _ = chain(calls)
        env.add_worker(worker)
        wf = dagnats.Workflow("fault-nap")
        nap = wf.sleep("nap", duration="48h")
        wf.step("reserve", depends_on=[nap])
        env.faults.crash_engine(after_events=1)  # the start: the sleep's timer is in flight
        run = await env.client.start(wf, 3)
        assert await run.result(timeout=RESULT_S) == 3
        assert env.faults.crashes == 1 and calls.count() == {"reserve": 1}


async def test_a_duplicate_delivery_records_one_result() -> None:
    calls = Calls()
    async with DagnatsEnv.start() as env:
        worker, wf = chain(calls)
        env.add_worker(worker)
        await env.faults.duplicate_delivery("charge")
        run = await env.client.start(wf, 2)
        assert await run.result(timeout=RESULT_S) == "shipped 20"
        charges = calls.of("charge")
        assert len(charges) == 2 and charges[0] == charges[1]  # same key, same attempt
        state = await wait_state(run, "completed")
        assert state.steps["charge"].attempts == 1 and calls.count()["ship"] == 1


async def test_a_lost_worker_s_task_runs_again_with_the_same_key() -> None:
    calls = Calls()
    async with DagnatsEnv.start() as env:
        worker, wf = chain(calls)
        env.add_worker(worker)
        env.faults.lose_worker("charge")
        run = await env.client.start(wf, 5)
        assert await run.result(timeout=RESULT_S) == "shipped 50"
        charges = calls.of("charge")
        assert len(charges) == 2 and charges[0] == charges[1]
        assert worker.stats.unreported == 1
        state = await wait_state(run, "completed")
        assert state.steps["charge"].attempts == 1  # a lost delivery is not a failed attempt


async def test_an_expired_ack_runs_the_handler_twice_and_records_once() -> None:
    calls = Calls()
    async with DagnatsEnv.start() as env:
        worker, wf = chain(calls, slow_s=0.2)
        env.add_worker(worker)
        env.faults.expire_ack("charge")
        run = await env.client.start(wf, 4)
        assert await run.result(timeout=RESULT_S) == "shipped 40"
        charges = calls.of("charge")
        assert len(charges) == 2 and charges[0] == charges[1]
        completed = [
            e async for e in run.events() if e.type == "step.completed" and e.step_id == "charge"
        ]
        assert len(completed) == 1  # the second result is deduplicated
        assert calls.count()["ship"] == 1


async def test_a_killed_server_keeps_every_acknowledged_event() -> None:
    calls = Calls()
    async with DagnatsEnv.start() as env:
        worker, _ = chain(calls)
        env.add_worker(worker)
        wf = dagnats.Workflow("fault-kill")
        first = wf.step("reserve")
        nap = wf.sleep("nap", duration="1s", depends_on=[first])
        wf.step("ship", depends_on=[nap])
        run = await env.client.start(wf, 9)
        await wait_event(run, "step.completed", step_id="reserve", timeout=RESULT_S)
        await env.faults.kill_server()
        assert await run.result(timeout=RESULT_S) == "shipped 9"
        assert calls.count() == {"reserve": 1, "ship": 1}


def test_faults_refuse_what_they_cannot_do() -> None:
    async def check() -> None:
        async with DagnatsEnv.start(engine=False, api=False) as env:
            with pytest.raises(RuntimeError, match="running engine"):
                env.faults.crash_engine(after_events=1)
            with pytest.raises(ValueError, match="after_events"):
                env.faults.crash_engine(after_events=0)
            with pytest.raises(LookupError, match=r"no worker .* 'charge'"):
                env.faults.lose_worker("charge")

    asyncio.run(check())
