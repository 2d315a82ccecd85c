"""Methodology: an event the engine cannot apply however often it comes (its run's snapshot is
garbage) must be parked in DEAD_LETTERS after a bounded number of deliveries, and the engine
must go on serving other runs. Real nats-server; bounds shortened through Engine options."""

from __future__ import annotations

import dagnats
from dagnats.dag import wire
from dagnats.dag.events import Event
from dagnats.testing import DagnatsEnv


async def test_poison_event_is_parked_and_the_engine_goes_on() -> None:
    async with DagnatsEnv.start(engine=False) as env:
        await env.start_engine(max_event_deliveries=2, apply_tries=1, redeliver_delay_s=0.05)
        js = env.nc.jetstream()
        kv = await js.key_value(wire.KV_RUNS)
        await kv.put("poison-run", b"{not a snapshot")
        dead = await env.nc.subscribe(wire.dead_letter_subject("poison-run", "engine"))
        event = Event(type="step.completed", run_id="poison-run", step_id="a", attempt=1)
        await js.publish(wire.history_subject("poison-run"), event.to_bytes())
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
