"""Methodology: each step type run end to end on a real nats-server via the public API."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dagnats
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, event_types, wait_event, wait_state

FAST_RETRY = dagnats.RetryPolicy(max_attempts=2, strategy="fixed", initial_delay="20ms")


# --- agent_loop -------------------------------------------------------------------------


def loop_worker(record: list[tuple[int, float]], *, forever: bool = False) -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def think(ctx: dagnats.TaskContext, n: int) -> int | dagnats.Continue[int]:
        record.append((ctx.iteration, time.monotonic()))
        if forever or n < 3:
            return dagnats.Continue(n + 1)
        return n * 100

    return worker


async def test_agent_loop_continues_until_a_plain_value(dagnats_env: DagnatsEnv) -> None:
    seen: list[tuple[int, float]] = []
    dagnats_env.add_worker(loop_worker(seen))
    wf = dagnats.Workflow("loop-flow")
    wf.agent_loop("think", max_iterations=10)
    run = await dagnats_env.client.start(wf, 0)
    assert await run.result(timeout=WAIT_S) == 300
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    assert (await event_types(run)).count(ev.STEP_CONTINUE) == 3


async def test_agent_loop_max_iterations_fails_naming_the_limit(dagnats_env: DagnatsEnv) -> None:
    seen: list[tuple[int, float]] = []
    dagnats_env.add_worker(loop_worker(seen, forever=True))
    wf = dagnats.Workflow("loop-forever")
    wf.agent_loop("think", max_iterations=3)
    run = await dagnats_env.client.start(wf, 0)
    with pytest.raises(dagnats.RunFailedError, match=r"max_iterations limit \(3\)"):
        await run.result(timeout=WAIT_S)
    assert [i for i, _ in seen] == [0, 1, 2]


async def test_agent_loop_max_duration_fails_naming_the_limit(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    runs = 0

    @worker.task()
    async def slow_think(ctx: dagnats.TaskContext, n: int) -> dagnats.Continue[int]:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.06)
        return dagnats.Continue(n + 1)

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("loop-slow")
    wf.agent_loop("slow_think", max_iterations=1000, max_duration="200ms")
    run = await dagnats_env.client.start(wf, 0)
    with pytest.raises(dagnats.RunFailedError, match=r"max_duration \(200ms\)"):
        await run.result(timeout=WAIT_S)
    assert 2 <= runs < 20


async def test_agent_loop_delay_spaces_iterations(dagnats_env: DagnatsEnv) -> None:
    seen: list[tuple[int, float]] = []
    dagnats_env.add_worker(loop_worker(seen))
    wf = dagnats.Workflow("loop-delay")
    wf.agent_loop("think", max_iterations=10, loop_delay="100ms")
    run = await dagnats_env.client.start(wf, 1)
    assert await run.result(timeout=WAIT_S) == 300
    times = [t for _, t in seen]
    assert [i for i, _ in seen] == [0, 1, 2]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(times))


async def test_agent_loop_delay_survives_an_engine_restart(dagnats_env: DagnatsEnv) -> None:
    seen: list[tuple[int, float]] = []
    dagnats_env.add_worker(loop_worker(seen))
    wf = dagnats.Workflow("loop-restart")
    wf.agent_loop("think", max_iterations=10, loop_delay="300ms")
    run = await dagnats_env.client.start(wf, 2)
    # The engine applied the continue: the delay timer is armed.
    await wait_state(dagnats_env, run.run_id, lambda s: s.steps["think"].waiting == "loop_delay")
    await dagnats_env.stop_engine()
    await asyncio.sleep(0.4)  # the delay comes due while no engine runs
    await dagnats_env.start_engine()
    assert await run.result(timeout=WAIT_S) == 300
    assert [i for i, _ in seen] == [0, 1]


# --- map --------------------------------------------------------------------------------


def map_worker(
    items: list[Any], calls: list[tuple[int | None, int]], *, flaky_item: int | None = None
) -> dagnats.Worker:
    worker = dagnats.Worker(concurrency=64)

    @worker.task()
    async def produce(ctx: dagnats.TaskContext) -> list[Any]:
        return items

    @worker.task()
    async def square(ctx: dagnats.TaskContext, x: int) -> int:
        calls.append((ctx.item, ctx.attempt))
        if ctx.item == flaky_item and ctx.attempt == 1:
            raise RuntimeError(f"item {ctx.item} fails once")
        if len(items) <= 10:
            await asyncio.sleep(0.01 * (len(items) - x))  # later items finish first
        return x * x

    @worker.task()
    async def count(ctx: dagnats.TaskContext, xs: list[int]) -> int:
        return len(xs)

    return worker


def map_flow(name: str, *, downstream: bool = False, **options: Any) -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    p = wf.step("produce")
    m = wf.map("square", depends_on=[p], **options)
    if downstream:
        wf.step("count", depends_on=[m])
    return wf


async def test_map_fans_out_and_fans_in_in_index_order(dagnats_env: DagnatsEnv) -> None:
    calls: list[tuple[int | None, int]] = []
    dagnats_env.add_worker(map_worker([1, 2, 3, 4, 5], calls))
    run = await dagnats_env.client.start(map_flow("map-flow"))
    assert await run.result(timeout=WAIT_S) == [1, 4, 9, 16, 25]
    indexes = [i for i, _ in calls]
    assert None not in indexes
    assert sorted(i for i in indexes if i is not None) == [0, 1, 2, 3, 4]
    state = await run.status()
    assert state.steps["square"].status == "completed"


async def test_map_over_an_empty_array_completes_and_downstream_runs(
    dagnats_env: DagnatsEnv,
) -> None:
    calls: list[tuple[int | None, int]] = []
    dagnats_env.add_worker(map_worker([], calls))
    run = await dagnats_env.client.start(map_flow("map-empty", downstream=True))
    assert await run.result(timeout=WAIT_S) == 0
    assert (await run.status()).steps["square"].output == []
    assert calls == []


async def test_map_max_items_exceeded_fails_clearly(dagnats_env: DagnatsEnv) -> None:
    calls: list[tuple[int | None, int]] = []
    dagnats_env.add_worker(map_worker([1, 2, 3, 4, 5], calls))
    run = await dagnats_env.client.start(map_flow("map-too-many", max_items=3))
    with pytest.raises(dagnats.RunFailedError, match="max_items") as info:
        await run.result(timeout=WAIT_S)
    assert info.value.step_id == "square"
    assert "5" in str(info.value)
    assert calls == []


async def test_map_instance_retries_under_the_step_policy(dagnats_env: DagnatsEnv) -> None:
    calls: list[tuple[int | None, int]] = []
    dagnats_env.add_worker(map_worker([1, 2, 3, 4], calls, flaky_item=2))
    run = await dagnats_env.client.start(map_flow("map-flaky", retry=FAST_RETRY))
    assert await run.result(timeout=WAIT_S) == [1, 4, 9, 16]
    assert sorted(calls) == [(0, 1), (1, 1), (2, 1), (2, 2), (3, 1)]


async def test_map_of_1500_items_uses_chunked_batches(dagnats_env: DagnatsEnv) -> None:
    calls: list[tuple[int | None, int]] = []
    items = list(range(1500))
    dagnats_env.add_worker(map_worker(items, calls))
    run = await dagnats_env.client.start(map_flow("map-big", max_items=2000))
    assert await run.result(timeout=60) == [x * x for x in items]
    assert len(calls) == 1500


# --- sub_workflow -----------------------------------------------------------------------


def child_worker(gate: asyncio.Event | None = None) -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, x: int) -> int:
        if gate is not None:
            await asyncio.wait_for(gate.wait(), WAIT_S)
        return x * 2

    @worker.task()
    async def explode(ctx: dagnats.TaskContext, x: int) -> int:
        raise dagnats.NonRetryableError(f"child cannot handle {x}")

    @worker.task()
    async def inc(ctx: dagnats.TaskContext, x: int) -> int:
        return x + 1

    @worker.task()
    async def rescue(ctx: dagnats.TaskContext, info: dict[str, Any]) -> str:
        return f"rescued {info['failed_step']}: {info['error'][:40]}"

    return worker


def child_flow(name: str = "child-double", task: str = "double") -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    wf.step(task)
    return wf


async def test_sub_workflow_passes_input_and_output(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(child_worker())
    await dagnats_env.client.register(child_flow())
    wf = dagnats.Workflow("parent-flow")
    a = wf.step("inc")
    c = wf.sub_workflow("call", workflow="child-double", depends_on=[a])
    wf.step("after", task="inc", depends_on=[c])
    run = await dagnats_env.client.start(wf, 20)
    assert await run.result(timeout=WAIT_S) == 43  # (20 + 1) * 2 + 1
    child_id = (await run.status()).steps["call"].child_run_id
    assert child_id is not None
    child = dagnats_env.client.run(child_id)
    assert await child.result(timeout=WAIT_S) == 42
    assert (await child.status()).input == 21


async def test_sub_workflow_detach_completes_the_step_at_once(dagnats_env: DagnatsEnv) -> None:
    gate = asyncio.Event()
    dagnats_env.add_worker(child_worker(gate))
    await dagnats_env.client.register(child_flow())
    wf = dagnats.Workflow("parent-detached")
    wf.sub_workflow("fire", workflow="child-double", detach=True)
    run = await dagnats_env.client.start(wf, 5)
    out = await run.result(timeout=WAIT_S)  # the child is still blocked on the gate
    child = dagnats_env.client.run(out["child_run_id"])
    assert (await child.status()).status in ("pending", "running")
    gate.set()
    assert await child.result(timeout=WAIT_S) == 10


async def test_sub_workflow_failure_triggers_on_failure(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(child_worker())
    await dagnats_env.client.register(child_flow("child-explode", "explode"))
    wf = dagnats.Workflow("parent-rescued")
    wf.sub_workflow("call", workflow="child-explode", on_failure="rescue")
    wf.step("rescue")
    run = await dagnats_env.client.start(wf, 7)
    out = await run.result(timeout=WAIT_S)
    assert out.startswith("rescued call: sub-workflow run")
    state = await run.status()
    assert state.steps["call"].status == "recovered"
    assert "child cannot handle 7" in (
        state.steps["call"].error.message if state.steps["call"].error else ""
    )


async def test_cancelling_the_parent_cancels_the_child(dagnats_env: DagnatsEnv) -> None:
    gate = asyncio.Event()
    dagnats_env.add_worker(child_worker(gate))
    await dagnats_env.client.register(child_flow())
    wf = dagnats.Workflow("parent-cancelled")
    wf.sub_workflow("call", workflow="child-double")
    run = await dagnats_env.client.start(wf, 1)
    started = await wait_event(run, ev.STEP_CHILD_STARTED, step_id="call")
    child = dagnats_env.client.run(started.data["child_run_id"])
    await wait_state(dagnats_env, child.run_id, lambda s: s.steps["double"].status == "running")
    assert await run.cancel("stop everything")
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=WAIT_S)
    with pytest.raises(dagnats.RunCancelledError):
        await child.result(timeout=WAIT_S)
    gate.set()


async def test_recursive_sub_workflows_stop_at_the_depth_limit(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    # A workflow naming itself is refused when it is built (and registered)...
    selfish = dagnats.Workflow("selfish")
    with pytest.raises(dagnats.DefinitionError, match="cannot start itself"):
        selfish.sub_workflow("again", workflow="selfish")
    text = '{"name": "selfish", "steps": [{"id": "again", "type": "sub_workflow", '
    text += '"config": {"workflow": "selfish"}}]}'
    with pytest.raises(dagnats.DefinitionError, match="cannot start itself"):
        await client.register(text)
    # ...and recursion through another workflow is bounded at run time.
    ping = dagnats.Workflow("ping")
    ping.sub_workflow("call", workflow="pong")
    pong = dagnats.Workflow("pong")
    pong.sub_workflow("call", workflow="ping")
    await client.register(ping)
    await client.register(pong)
    run = await client.start("ping", {})
    with pytest.raises(dagnats.RunFailedError, match="MAX_SUB_WORKFLOW_DEPTH") as info:
        await run.result(timeout=WAIT_S)
    assert "nesting depth 9 exceeds the limit of 8" in str(info.value)


# --- sleep ------------------------------------------------------------------------------


async def test_sleep_duration_passes_its_input_through(dagnats_env: DagnatsEnv) -> None:
    wf = dagnats.Workflow("nap-flow")
    wf.sleep("nap", duration="200ms")
    t0 = time.monotonic()
    run = await dagnats_env.client.start(wf, {"keep": 1})
    assert await run.result(timeout=WAIT_S) == {"keep": 1}
    assert time.monotonic() - t0 >= 0.2


async def test_sleep_until_a_time_from_the_input(dagnats_env: DagnatsEnv) -> None:
    wf = dagnats.Workflow("nap-until")
    wf.sleep("nap", until="input.wake_at")
    wake = datetime.now(UTC) + timedelta(milliseconds=300)
    run = await dagnats_env.client.start(wf, {"wake_at": wake.isoformat()})
    await run.result(timeout=WAIT_S)
    assert datetime.now(UTC) >= wake
    started = await wait_event(run, ev.STEP_SLEEP_STARTED)
    assert datetime.fromisoformat(started.data["until"]) == wake


async def test_sleep_survives_an_engine_and_nats_server_restart(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(child_worker())
    wf = dagnats.Workflow("nap-restart")
    a = wf.step("inc")
    s = wf.sleep("nap", duration="1s", depends_on=[a])
    wf.step("after", task="inc", depends_on=[s])
    run = await dagnats_env.client.start(wf, 1)
    await wait_state(dagnats_env, run.run_id, lambda st: st.steps["nap"].waiting == "sleep")
    await dagnats_env.stop_engine()
    await dagnats_env.restart_server()  # same port, same store: the timer is in the stream
    await dagnats_env.start_engine()
    assert await run.result(timeout=WAIT_S) == 3
    types = await event_types(run)
    assert types.count(ev.STEP_SLEEP_COMPLETED) == 1


# --- wait_for_event ---------------------------------------------------------------------


def order_wait_flow(name: str, **options: Any) -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    wf.wait_for_event(
        "paid", event="payment.received", match={"order_id": "run.input.order_id"}, **options
    )
    return wf


async def test_wait_for_event_matches_a_field_of_the_run_input(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    run = await client.start(order_wait_flow("wait-flow"), {"order_id": "o-2"})
    await wait_event(run, ev.STEP_WAIT_STARTED)
    await client.publish_event("payment.received", {"order_id": "o-1", "amount": 1})
    await client.publish_event("payment.received", {"order_id": "o-2", "amount": 2})
    assert await run.result(timeout=WAIT_S) == {"order_id": "o-2", "amount": 2}


async def test_wait_for_event_sees_an_event_published_just_before(
    dagnats_env: DagnatsEnv,
) -> None:
    client = dagnats_env.client
    await client.publish_event("payment.received", {"order_id": "early", "amount": 5})
    run = await client.start(order_wait_flow("wait-early"), {"order_id": "early"})
    assert await run.result(timeout=WAIT_S) == {"order_id": "early", "amount": 5}


async def test_wait_for_event_timeout_completes_with_a_marker(dagnats_env: DagnatsEnv) -> None:
    run = await dagnats_env.client.start(
        order_wait_flow("wait-timeout", timeout="200ms"), {"order_id": "never"}
    )
    assert await run.result(timeout=WAIT_S) == {"timeout": True}


# --- approval ---------------------------------------------------------------------------


def approval_flow(name: str, timeout: str = "1m") -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    wf.approval("sign-off", timeout=timeout, message="ship it?")
    return wf


async def test_approval_token_approve_once(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    run = await client.start(approval_flow("approve-flow"))
    requested = await wait_event(run, ev.STEP_APPROVAL_REQUESTED)
    token = requested.data["token"]
    assert len(bytes.fromhex(token)) == 32  # 256 bits
    assert requested.data["message"] == "ship it?"
    await client.approve(token, {"by": "ada"})
    assert await run.result(timeout=WAIT_S) == {"by": "ada"}
    with pytest.raises(dagnats.ApprovalError, match="already used"):
        await client.approve(token, {"by": "bob"})
    with pytest.raises(dagnats.ApprovalError):
        await client.reject(token, "too late")


async def test_approval_reject_fails_the_step(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    run = await client.start(approval_flow("reject-flow"))
    token = (await wait_event(run, ev.STEP_APPROVAL_REQUESTED)).data["token"]
    await client.reject(token, "not today")
    with pytest.raises(dagnats.RunFailedError, match="rejected: not today") as info:
        await run.result(timeout=WAIT_S)
    assert info.value.step_id == "sign-off"


async def test_approval_expiry_fails_the_step(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    run = await client.start(approval_flow("expire-flow", timeout="200ms"))
    token = (await wait_event(run, ev.STEP_APPROVAL_REQUESTED)).data["token"]
    with pytest.raises(dagnats.RunFailedError, match="expired after 200ms"):
        await run.result(timeout=WAIT_S)
    with pytest.raises(dagnats.ApprovalError, match="expired"):
        await client.approve(token, {"by": "late"})
