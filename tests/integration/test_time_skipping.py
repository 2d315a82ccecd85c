"""Time skipping: timers due on a virtual clock, real NATS throughout.

Methodology: each test starts a real environment with ``time_skipping=True`` (or the
``dagnats`` marker), runs workflows whose timers would take days or hours of wall time, and
checks both the outcome and that the wall time stayed well under a second; the virtual
clock's reading is checked against the timers' lengths.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import dagnats
from dagnats.protocol import clock
from dagnats.testing import DagnatsEnv, wait_event, wait_state

WEEK = timedelta(days=7)


def flaky_worker(name: str, failures: int) -> dagnats.Worker:
    worker = dagnats.Worker(name=name)
    calls = {"n": 0}

    @worker.task()
    async def charge(ctx: dagnats.TaskContext, amount: int) -> dict[str, int]:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError("card network down")
        return {"charged": amount, "attempt": ctx.attempt}

    return worker


def week_then_charge(name: str) -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    nap = wf.sleep("nap", duration="168h")
    wf.step(
        "charge",
        depends_on=[nap],
        retry=dagnats.RetryPolicy(max_attempts=2, strategy="fixed", initial_delay="1h"),
    )
    return wf


async def test_a_week_long_sleep_and_an_hour_retry_take_well_under_a_second() -> None:
    async with DagnatsEnv.start(time_skipping=True) as env:
        env.add_worker(flaky_worker("ts-1", failures=1))
        await env.wait_workers_ready()
        began_virtual, began = env.now(), time.perf_counter()
        run = await env.client.start(week_then_charge("ts-week"), 42)
        assert await run.result(timeout=5) == {"charged": 42, "attempt": 2}
        wall_s = time.perf_counter() - began
        skipped = env.now() - began_virtual
    assert wall_s < 1.0, f"took {wall_s:.3f}s of wall time"
    assert WEEK + timedelta(hours=1) <= skipped < WEEK + timedelta(hours=1, minutes=1)


async def test_events_and_the_snapshot_carry_virtual_time() -> None:
    async with DagnatsEnv.start(time_skipping=True) as env:
        env.add_worker(flaky_worker("ts-2", failures=0))
        run = await env.client.start(week_then_charge("ts-stamps"), 1)
        await run.result(timeout=5)
        started = (await wait_event(run, "workflow.started")).ts
        charged = (await wait_event(run, "step.completed", step_id="charge")).ts
        assert charged - started >= WEEK
        state = await wait_state(run, "completed")
        assert state.finished_at is not None and state.finished_at - started >= WEEK
        assert clock.installed() is env.clock
    assert clock.installed() is clock.SYSTEM  # the wall clock is back after the block


async def test_env_sleep_moves_the_clock_by_hand_through_due_timers() -> None:
    async with DagnatsEnv.start(time_skipping=True) as env:
        wf = dagnats.Workflow("ts-approval")
        wf.approval("sign-off", timeout="24h")
        run = await env.client.start(wf, None)
        asked = await wait_event(run, "step.approval.requested")
        assert asked.data["token"]
        # The clock does not jump to the deadline on its own: a person could still answer.
        before = env.now()
        await env.wait_quiet()
        assert env.now() == before
        await env.sleep("25h")  # ... but passes it on request
        assert env.now() - before == timedelta(hours=25)
        with pytest.raises(dagnats.RunFailedError):
            await run.result(timeout=5)


async def test_an_approval_answered_in_time_while_the_clock_waits() -> None:
    async with DagnatsEnv.start(time_skipping=True) as env:
        wf = dagnats.Workflow("ts-approve")
        nap = wf.sleep("nap", duration="72h")
        wf.approval("sign-off", depends_on=[nap], timeout="24h")
        run = await env.client.start(wf, None)
        asked = await wait_event(run, "step.approval.requested", timeout=5)
        await env.client.approve(asked.data["token"], {"ok": True})
        assert await run.result(timeout=5) == {"ok": True}


@pytest.mark.dagnats(time_skipping=True)
async def test_the_marker_gives_the_fixture_a_virtual_clock(dagnats_env: DagnatsEnv) -> None:
    assert dagnats_env.clock is not None
    wf = dagnats.Workflow("ts-marker")
    wf.sleep("nap", duration="720h")  # 30 days
    began = time.perf_counter()
    run = await dagnats_env.client.start(wf, None)
    await run.result(timeout=5)
    assert time.perf_counter() - began < 1.0


async def test_without_time_skipping_sleep_is_real_and_now_is_the_wall_clock() -> None:
    async with DagnatsEnv.start(engine=False, api=False) as env:
        assert env.clock is None
        began = time.perf_counter()
        await env.sleep(0.05)
        assert time.perf_counter() - began >= 0.05
        with pytest.raises(RuntimeError, match="time_skipping"):
            await env.wait_quiet()


async def test_two_time_skipping_environments_at_once_are_refused() -> None:
    async with DagnatsEnv.start(time_skipping=True, engine=False, api=False):
        with pytest.raises(RuntimeError, match="one DagnatsEnv"):
            async with DagnatsEnv.start(time_skipping=True, engine=False, api=False):
                pass
