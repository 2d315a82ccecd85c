"""Methodology: the control plane on a real nats-server through the public API: a handler
whose step declares "control-plane" registers a child definition and starts it (the child's
result is read with the client); a retry of that handler gets the same child; a step
without the capability gets CapabilityError; the per-root budget refuses the operation past
it, naming the limit, including for grandchildren started from a child's handler."""

from __future__ import annotations

from typing import Any

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from dagnats.worker import control
from tests.integration.run_helpers import WAIT_S

CHILD = {"name": "child-double", "steps": [{"id": "double"}]}


def orchestrating_worker(children: list[str]) -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def orchestrate(ctx: dagnats.TaskContext, n: int) -> list[str]:
        info = await ctx.control.register(CHILD)
        assert info["name"] == "child-double"
        started = [await ctx.control.start("child-double", n + i) for i in range(2)]
        children.extend(started)
        if ctx.attempt == 1:
            raise RuntimeError("try again: the same children must come back")
        return started

    @worker.task()
    async def double(ctx: dagnats.TaskContext, n: int) -> int:
        return n * 2

    @worker.task()
    async def sneaky(ctx: dagnats.TaskContext, inp: Any) -> str:
        return str(await ctx.control.start("child-double", 1))

    return worker


async def test_a_handler_registers_and_starts_a_child(dagnats_env: DagnatsEnv) -> None:
    children: list[str] = []
    dagnats_env.add_worker(orchestrating_worker(children))
    wf = dagnats.Workflow("orchestrator")
    wf.step(
        "orchestrate",
        required_capabilities=["control-plane"],
        retry=dagnats.RetryPolicy(max_attempts=1, initial_delay="10ms"),
    )
    run = await dagnats_env.client.start(wf, 20)
    started = await run.result(timeout=WAIT_S)
    assert children == started + started  # the retry got the same two children
    client = dagnats_env.client
    assert [await client.run(c).result(timeout=WAIT_S) for c in started] == [40, 42]


async def test_without_the_capability_ctx_control_is_refused(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(orchestrating_worker([]))
    wf = dagnats.Workflow("no-powers")
    wf.step("sneaky")
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError, match="does not declare required_capabilities"):
        await run.result(timeout=WAIT_S)


async def test_the_budget_is_per_root_run(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "MAX_CONTROL_OPS", 3)
    worker = dagnats.Worker()

    @worker.task()
    async def spawn(ctx: dagnats.TaskContext, depth: int) -> list[str]:
        if depth == 0:
            return []
        return [await ctx.control.start("spawner", depth - 1) for _ in range(2)]

    dagnats_env.add_worker(worker)
    child = dagnats.Workflow("spawner")
    child.step("spawn", required_capabilities=["control-plane"])
    await dagnats_env.client.register(child)
    # The root starts 2 children (2 ops); the first child's first start is the 3rd op, its
    # second start is refused: the whole tree shares the root's budget.
    run = await dagnats_env.client.start(child, 2)
    kids = await run.result(timeout=WAIT_S)
    assert len(kids) == 2
    outcomes = []
    for kid in kids:
        try:
            outcomes.append(await dagnats_env.client.run(kid).result(timeout=WAIT_S))
        except dagnats.RunFailedError as exc:
            outcomes.append(str(exc))
    failures = [o for o in outcomes if isinstance(o, str)]
    assert failures and all("budget of 3 operations per root run" in f for f in failures)
