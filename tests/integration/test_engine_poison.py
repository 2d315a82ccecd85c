"""Methodology: an event the engine cannot apply however often it comes (its run's snapshot is
garbage) must be parked in DEAD_LETTERS after a bounded number of deliveries, and the engine
must go on serving other runs. Real nats-server; bounds shortened through Engine options."""

from __future__ import annotations

from typing import Any

import pytest

import dagnats
from dagnats import protocol
from dagnats.protocol.events import Event
from dagnats.testing import DagnatsEnv


async def test_poison_event_is_parked_and_the_engine_goes_on() -> None:
    async with DagnatsEnv.start(engine=False) as env:
        await env.start_engine(max_event_deliveries=2, apply_tries=1, redeliver_delay_s=0.05)
        js = env.nc.jetstream()
        kv = await js.key_value(protocol.KV_RUNS)
        await kv.put("poison-run", b"{not a snapshot")
        dead = await env.nc.subscribe(protocol.dead_letter_subject("poison-run", "engine"))
        event = Event(type="step.completed", run_id="poison-run", step_id="a", attempt=1)
        await js.publish(protocol.history_subject("poison-run"), event.to_bytes())
        msg = await dead.next_msg(timeout=20)
        assert b"could not apply event step.completed" in msg.data
        await dead.unsubscribe()

        worker = dagnats.Worker()

        @worker.task()
        async def echo(ctx: dagnats.TaskContext, x: int) -> int:
            return x

        env.add_worker(worker)
        wf = dagnats.Workflow("after-poison")
        wf.step("echo")
        run = await env.client.start(wf, 5)
        assert await run.result(timeout=15) == 5


async def test_a_run_hit_by_a_poison_event_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection of a bug in the pure core for one event: the engine must give up on
    # it after its bounded deliveries, fail the run with a record, and free its slot.
    from dagnats.dag.machine.advance import advance as real_advance
    from dagnats.engine import engine as engine_module

    def buggy_advance(defn: Any, run: Any, event: Event) -> Any:
        if event.type == "step.completed" and event.step_id == "first":
            raise ValueError("simulated bug")
        return real_advance(defn, run, event)

    monkeypatch.setattr(engine_module, "advance", buggy_advance)
    async with DagnatsEnv.start(engine=False) as env:
        await env.start_engine(max_event_deliveries=2, apply_tries=1, redeliver_delay_s=0.05)
        worker = dagnats.Worker()

        @worker.task()
        async def first(ctx: dagnats.TaskContext, x: int) -> int:
            return x

        env.add_worker(worker)
        doomed = dagnats.Workflow("one-at-a-time", concurrency={"max_runs": 1})
        doomed.step("first")
        run = await env.client.start(doomed, 1)
        with pytest.raises(dagnats.RunFailedError, match="simulated bug") as info:
            await run.result(timeout=20)
        assert info.value.status == "failed"
        types = [e.type async for e in run.events()]
        assert types[-1] == "workflow.failed"
        # The run's max_runs slot was given back: a later run of the workflow starts.
        monkeypatch.setattr(engine_module, "advance", real_advance)
        later = await env.client.start(doomed, 2)
        assert await later.result(timeout=20) == 2
