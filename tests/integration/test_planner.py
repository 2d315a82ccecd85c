"""Methodology: planner steps on a real nats-server through the public API: a fragment
that breaks a rule fails the run with that rule's message and leaves no step of it behind;
a good one survives an engine restart mid-fragment (the snapshot holds the plan)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import dagnats
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, event_types


async def test_a_bad_fragment_fails_the_run_and_applies_nothing(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def plan(ctx: dagnats.TaskContext, inp: Any) -> dict[str, Any]:
        return {"steps": [{"id": "a", "task": "rm-rf"}]}

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("bad-plans")
    wf.planner("plan", allowed_tasks=["build"])
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError, match=r"'rm-rf' is not in config\.allowed_tasks"):
        await run.result(timeout=WAIT_S)
    state = await run.status()
    assert set(state.steps) == {"plan"}
    assert ev.PLANNER_MATERIALIZED not in await event_types(run)


async def test_a_fragment_survives_an_engine_restart(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    entered = asyncio.Event()

    @worker.task()
    async def plan(ctx: dagnats.TaskContext, inp: Any) -> dict[str, Any]:
        return {
            "steps": [
                {"id": "slow", "task": "slow"},
                {"id": "after", "task": "after", "depends_on": ["slow"]},
            ]
        }

    @worker.task()
    async def slow(ctx: dagnats.TaskContext, inp: Any) -> str:
        entered.set()
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return "slow"

    @worker.task()
    async def after(ctx: dagnats.TaskContext, inp: str) -> str:
        return f"{inp} then after"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("restarted-plans")
    wf.planner("plan")
    run = await dagnats_env.client.start(wf, None)
    await asyncio.wait_for(entered.wait(), WAIT_S)
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine()
    gate.set()
    assert await run.result(timeout=WAIT_S) == "slow then after"
