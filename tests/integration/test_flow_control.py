"""Methodology: each flow-control option end to end on a real nats-server via the public API:
priority orders a max_runs backlog, keyed_rate_limit buckets per key (units, retries),
concurrency.max_steps caps a run's parallel steps, agent-loop budgets warn and force, and
step metadata reaches the handler (agent steps). Timing checks are lower bounds only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, wait_state


async def test_priority_orders_the_pending_backlog(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    order: list[str] = []
    blocker_started = asyncio.Event()
    release = asyncio.Event()

    @worker.task()
    async def job(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> str:
        order.append(inp["name"])
        if inp["name"] == "blocker":
            blocker_started.set()
            await asyncio.wait_for(release.wait(), WAIT_S)
        return str(inp["name"])

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow(
        "prioritised",
        concurrency={"max_runs": 1},
        priority={"key": "tier", "rules": {"gold": -300, "bronze": 300}, "default_offset": 0},
    )
    wf.step("job")
    client = dagnats_env.client
    blocker = await client.start(wf, {"name": "blocker"})
    await asyncio.wait_for(blocker_started.wait(), WAIT_S)
    backlog = []
    for name, tier in (
        ("bronze-1", "bronze"),
        ("plain-1", None),
        ("gold-1", "gold"),
        ("plain-2", "silver"),  # a value without a rule: default_offset
        ("gold-2", "gold"),
    ):
        run = await client.start(wf, {"name": name, "tier": tier})
        await wait_state(dagnats_env, run.run_id, lambda s: s.status == "pending")
        backlog.append(run)
    release.set()
    for run in [blocker, *backlog]:
        await run.result(timeout=WAIT_S)
    assert order == ["blocker", "gold-1", "gold-2", "plain-1", "plain-2", "bronze-1"]


async def test_keyed_rate_limit_has_one_bucket_per_key(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    started: list[str] = []

    @worker.task()
    async def call_api(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> str:
        started.append(inp["name"])
        return str(inp["name"])

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("per-tenant")
    # 2 tokens per tenant, refilled at 1 token per 10 s: a tenant's third call waits ~10 s
    # (long enough that tenant b's whole run fits in it on a loaded machine).
    wf.step("call_api", keyed_rate_limit={"key": "tenant", "limit": 2, "period": "20s"})
    client = dagnats_env.client
    a = [await client.start(wf, {"tenant": "a", "name": f"a{i}"}) for i in range(3)]
    # Two of a's calls take its two tokens, in whatever order the engine's partitions
    # dispatch the three runs; the third waits for a refill.
    results = [asyncio.ensure_future(run.result(timeout=WAIT_S + 10)) for run in a]
    first_two: list[str] = []
    for fut in asyncio.as_completed(results, timeout=WAIT_S):
        first_two.append(await fut)
        if len(first_two) == 2:
            break
    b = await client.start(wf, {"tenant": "b", "name": "b0"})
    # Tenant b has its own full bucket: it runs while a's third call still waits.
    assert await b.result(timeout=WAIT_S) == "b0"
    assert sorted(n for n in started if n.startswith("a")) == sorted(first_two)
    assert sorted(await asyncio.gather(*results)) == ["a0", "a1", "a2"]
    [third] = {"a0", "a1", "a2"} - set(first_two)
    assert started.index("b0") < started.index(third)


async def test_keyed_rate_limit_units_and_retries_take_tokens(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    starts: list[tuple[str, int, float]] = []

    @worker.task()
    async def charge(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> str:
        starts.append((inp["name"], ctx.attempt, time.monotonic()))
        if inp["name"] == "first" and ctx.attempt == 1:
            raise RuntimeError("flaky")
        return str(inp["name"])

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("units")
    # 4 tokens, 2 per task, refilled at 1 token/s: attempt 1 and its retry empty the bucket.
    wf.step(
        "charge",
        keyed_rate_limit={"key": "input.tenant", "limit": 4, "period": "4s", "units": 2},
        retry=dagnats.RetryPolicy(max_attempts=1, strategy="fixed", initial_delay="10ms"),
    )
    client = dagnats_env.client
    first = await client.start(wf, {"tenant": "t", "name": "first"})
    assert await first.result(timeout=WAIT_S) == "first"
    second = await client.start(wf, {"tenant": "t", "name": "second"})
    assert await second.result(timeout=WAIT_S) == "second"
    assert [(n, att) for n, att, _ in starts] == [("first", 1), ("first", 2), ("second", 1)]
    # Had the retry not taken its 2 units, "second" would have found 2 tokens left at once.
    assert starts[2][2] - starts[1][2] >= 1.5


async def test_max_steps_caps_steps_running_at_once(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker(concurrency=8)
    running = 0
    peak = 0

    @worker.task()
    async def part(ctx: dagnats.TaskContext, n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return n * 2

    @worker.task()
    async def spread(ctx: dagnats.TaskContext, n: int) -> list[int]:
        return list(range(n))

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("capped", concurrency={"max_steps": 2})
    s = wf.step("spread")
    wf.map("parts", task="part", depends_on=[s])
    run = await dagnats_env.client.start(wf, 7)
    assert await run.result(timeout=WAIT_S) == [0, 2, 4, 6, 8, 10, 12]
    assert peak == 2


async def test_agent_loop_budgets_warn_then_force(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    seen: list[tuple[int, bool, bool]] = []

    @worker.task()
    async def think(ctx: dagnats.TaskContext, inp: Any) -> Any:
        seen.append((ctx.iteration, ctx.budget_warning, ctx.budget_final))
        if ctx.input == "obedient" and ctx.budget_final:
            return "done"
        return dagnats.Continue(ctx.input)

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("budgeted")
    wf.agent_loop("think", max_iterations=10, budget_warn_at=2, budget_force_at=4)
    run = await dagnats_env.client.start(wf, "obedient")
    assert await run.result(timeout=WAIT_S) == "done"
    assert seen == [(0, False, False), (1, True, False), (2, True, False), (3, True, True)]
    seen.clear()
    stubborn = await dagnats_env.client.start(wf, "stubborn")
    with pytest.raises(dagnats.RunFailedError, match="budget_force_at limit \\(4\\)"):
        await stubborn.result(timeout=WAIT_S)
    assert len(seen) == 4
    state = await stubborn.status()
    assert state.steps["think"].error is not None
    assert state.steps["think"].error.type == "BudgetExceeded"


async def test_metadata_reaches_the_handler_of_an_agent_step(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def review(ctx: dagnats.TaskContext, inp: Any) -> dict[str, Any]:
        return {"metadata": ctx.metadata, "caps": sorted(ctx.capabilities)}

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("agents")
    wf.agent("review", role="reviewer", metadata={"model": "small"})
    run = await dagnats_env.client.start(wf, None)
    out = await run.result(timeout=WAIT_S)
    assert out == {"metadata": {"model": "small", "role": "reviewer"}, "caps": []}
