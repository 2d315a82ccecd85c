"""Methodology: run controls and limits end to end on a real nats-server via the public API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import dagnats
from dagnats._nats.payloads import REF, THRESHOLD_BYTES
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, event_types, wait_event, wait_state

FAST_RETRY = dagnats.RetryPolicy(max_attempts=2, strategy="fixed", initial_delay="20ms")


async def test_skip_if_skips_and_dependents_get_none(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    ran: list[str] = []

    @worker.task()
    async def check(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> dict[str, Any]:
        ran.append("check")
        return inp

    @worker.task()
    async def notify(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> str:
        ran.append("notify")
        return f"notified {inp['n']}"

    @worker.task()
    async def finish(ctx: dagnats.TaskContext, inp: Any) -> Any:
        return {"got": inp}

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("skip-flow")
    c = wf.step("check")
    n = wf.step("notify", depends_on=[c], skip_if="input.n > 5 and not run.input.force")
    wf.step("finish", depends_on=[n])
    run = await dagnats_env.client.start(wf, {"n": 10, "force": False})
    assert await run.result(timeout=WAIT_S) == {"got": None}
    assert (await run.status()).steps["notify"].status == "skipped"
    assert ev.STEP_SKIPPED in await event_types(run)
    run = await dagnats_env.client.start(wf, {"n": 1})
    assert await run.result(timeout=WAIT_S) == {"got": "notified 1"}
    assert ran == ["check", "check", "notify"]


def saga_worker(log: list[str], *, fail: str) -> dagnats.Worker:
    worker = dagnats.Worker()

    def make(name: str) -> None:
        async def handler(ctx: dagnats.TaskContext, inp: Any) -> Any:
            log.append(name)
            if name == fail:
                raise dagnats.NonRetryableError(f"{name} is broken")
            if isinstance(inp, dict) and "failed_step" in inp:
                return {"handled": inp["failed_step"], "step": inp.get("original_step")}
            return name

        handler.__name__ = name.replace("-", "_")
        worker.task(name)(handler)

    for name in ("reserve", "charge", "ship", "unreserve", "refund", "notify"):
        make(name)
    return worker


async def test_on_failure_recovers_the_step_and_the_run_goes_on(dagnats_env: DagnatsEnv) -> None:
    log: list[str] = []
    dagnats_env.add_worker(saga_worker(log, fail="charge"))
    wf = dagnats.Workflow("recover-flow")
    c = wf.step("charge", on_failure="notify")
    wf.step("ship", depends_on=[c])
    wf.step("notify")
    run = await dagnats_env.client.start(wf, {})
    assert await run.result(timeout=WAIT_S) == "ship"
    assert log == ["charge", "notify", "ship"]
    state = await run.status()
    assert state.steps["charge"].status == "recovered"
    assert state.steps["charge"].output == {"handled": "charge", "step": None}


async def test_compensation_undoes_completed_steps(dagnats_env: DagnatsEnv) -> None:
    log: list[str] = []
    dagnats_env.add_worker(saga_worker(log, fail="ship"))
    wf = dagnats.Workflow("saga-flow")
    r = wf.step("reserve", compensate="unreserve")
    c = wf.step("charge", depends_on=[r], compensate="refund")
    wf.step("ship", depends_on=[c])
    wf.step("unreserve")
    wf.step("refund")
    run = await dagnats_env.client.start(wf, {})
    with pytest.raises(dagnats.RunFailedError, match="ship is broken") as info:
        await run.result(timeout=WAIT_S)
    assert info.value.status == "compensated"
    assert log == ["reserve", "charge", "ship", "refund", "unreserve"]


async def test_cancel_on_event_cancels_only_the_matching_run(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    started: set[str] = set()
    both = asyncio.Event()

    @worker.task()
    async def hold(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> str:
        started.add(inp["id"])
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return f"done {inp['id']}"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow(
        "order-flow",
        cancel_on=[{"event": "order.cancelled", "match": {"order_id": "input.id"}}],
    )
    wf.step("hold")
    client = dagnats_env.client
    a = await client.start(wf, {"id": "A"})
    b = await client.start(wf, {"id": "B"})
    await asyncio.wait_for(both.wait(), WAIT_S)
    await client.publish_event("order.cancelled", {"order_id": "A"})
    with pytest.raises(dagnats.RunCancelledError):
        await a.result(timeout=WAIT_S)
    err = (await a.status()).error
    assert err is not None and "order.cancelled" in err.message
    gate.set()
    assert await b.result(timeout=WAIT_S) == "done B"


async def test_cancel_on_event_right_after_start_still_cancels(dagnats_env: DagnatsEnv) -> None:
    # The cancel event is published after the start but before any engine has seen the
    # run (so before its waiter exists): it counts from the start, so the run is cancelled.
    # No worker serves the step: only the cancel event can end the run.
    wf = dagnats.Workflow(
        "order-flow-early",
        cancel_on=[{"event": "order.cancelled", "match": {"order_id": "input.id"}}],
    )
    wf.step("unserved")
    client = dagnats_env.client
    await client.register(wf)
    await dagnats_env.stop_engine()
    run = await client.start("order-flow-early", {"id": "early"})
    await client.publish_event("order.cancelled", {"order_id": "early"})
    await dagnats_env.start_engine()
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=WAIT_S)


async def test_workflow_timeout_ends_a_run_with_a_hung_step(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    release = asyncio.Event()

    @worker.task()
    async def hang(ctx: dagnats.TaskContext) -> None:
        await asyncio.wait_for(release.wait(), WAIT_S)

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("timeout-flow", timeout="300ms")
    wf.step("hang")
    t0 = time.monotonic()
    run = await dagnats_env.client.start(wf)
    with pytest.raises(dagnats.RunFailedError, match="timed out after 300ms"):
        await run.result(timeout=WAIT_S)
    assert 0.3 <= time.monotonic() - t0 < 5
    release.set()


async def test_max_runs_queues_runs_and_starts_them_in_order(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    order: list[str] = []
    running = 0
    peak = 0
    first_started = asyncio.Event()
    release = asyncio.Event()

    @worker.task()
    async def job(ctx: dagnats.TaskContext, name: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(name)
        if name == "first":
            first_started.set()
            await asyncio.wait_for(release.wait(), WAIT_S)
        running -= 1
        return name

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("one-at-a-time", concurrency={"max_runs": 1})
    wf.step("job")
    client = dagnats_env.client
    first = await client.start(wf, "first")
    await asyncio.wait_for(first_started.wait(), WAIT_S)
    second = await client.start(wf, "second")
    await wait_state(dagnats_env, second.run_id, lambda s: s.status == "pending")
    third = await client.start(wf, "third")
    await wait_state(dagnats_env, third.run_id, lambda s: s.status == "pending")
    assert (await second.status()).status == "pending"
    release.set()
    assert [await r.result(timeout=WAIT_S) for r in (first, second, third)] == [
        "first",
        "second",
        "third",
    ]
    assert order == ["first", "second", "third"]
    assert peak == 1


async def test_max_task_concurrency_holds_across_map_instances_and_retries(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker(concurrency=16)
    running = 0
    peak = 0
    calls: list[tuple[int | None, int]] = []

    @worker.task()
    async def items(ctx: dagnats.TaskContext) -> list[int]:
        return [1, 2, 3, 4]

    @worker.task()
    async def slow(ctx: dagnats.TaskContext, x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        calls.append((ctx.item, ctx.attempt))
        try:
            await asyncio.sleep(0.05)
            if ctx.item == 1 and ctx.attempt == 1:
                raise RuntimeError("fails once")
            return x * 10
        finally:
            running -= 1

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("limited-map")
    i = wf.step("items")
    wf.map("slow", depends_on=[i], max_task_concurrency=1, retry=FAST_RETRY)
    run = await dagnats_env.client.start(wf)
    assert await run.result(timeout=WAIT_S) == [10, 20, 30, 40]
    assert peak == 1
    assert sorted(calls) == [(0, 1), (1, 1), (1, 2), (2, 1), (3, 1)]


async def test_rate_limit_spaces_starts_retries_included(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker(concurrency=16)
    starts: list[float] = []

    @worker.task()
    async def items(ctx: dagnats.TaskContext) -> list[int]:
        return [0, 1, 2, 3, 4]

    @worker.task()
    async def call_api(ctx: dagnats.TaskContext, x: int) -> int:
        starts.append(time.monotonic())
        if ctx.item == 0 and ctx.attempt == 1:
            raise RuntimeError("429 from upstream")
        return x

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("rated-map")
    i = wf.step("items")
    wf.map(
        "call_api",
        depends_on=[i],
        rate_limit={"limit": 2, "period": "500ms"},
        retry=FAST_RETRY,
    )
    run = await dagnats_env.client.start(wf)
    assert await run.result(timeout=WAIT_S) == [0, 1, 2, 3, 4]
    assert len(starts) == 6  # five instances and one retry, all under the limit
    starts.sort()
    # A bucket of 2 tokens refilled at 2 per 500ms: after the burst of 2, one start per
    # 250ms at most, so 6 starts span at least 4 refills.
    assert starts[-1] - starts[0] >= 4 * 0.25 * 0.9
    for a, b in zip(starts, starts[2:], strict=False):
        assert b - a >= 0.25 * 0.9  # never 3 starts inside one refill interval


async def test_large_output_travels_by_reference(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    size = 3 * 1024 * 1024

    @worker.task()
    async def produce(ctx: dagnats.TaskContext, n: int) -> str:
        return "x" * n

    @worker.task()
    async def measure(ctx: dagnats.TaskContext, text: str) -> dict[str, Any]:
        return {"len": len(text), "head": text[:3]}

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("big-flow")
    p = wf.step("produce")
    wf.step("measure", depends_on=[p])
    run = await dagnats_env.client.start(wf, size)
    assert await run.result(timeout=WAIT_S) == {"len": size, "head": "xxx"}
    done = await wait_event(run, ev.STEP_COMPLETED, step_id="produce")
    ref = done.data["output"]
    assert isinstance(ref, dict) and REF in ref and ref["size"] > THRESHOLD_BYTES
    # The snapshot keeps the reference (small); a run whose result is large resolves it.
    assert (await run.status()).steps["produce"].output == ref
    wf2 = dagnats.Workflow("big-result")
    wf2.step("produce")
    run2 = await dagnats_env.client.start(wf2, size)
    out = await run2.result(timeout=WAIT_S)
    assert isinstance(out, str) and len(out) == size


async def test_large_outputs_inside_a_map_fan_in_and_a_multi_sink_result(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker()
    size = 300 * 1024  # each above the 256 KiB threshold: each travels by reference

    @worker.task()
    async def sizes(ctx: dagnats.TaskContext) -> list[int]:
        return [size, size + 1, size + 2]

    @worker.task()
    async def blob(ctx: dagnats.TaskContext, n: int) -> str:
        return "y" * n

    @worker.task()
    async def lengths(ctx: dagnats.TaskContext, blobs: list[str]) -> list[int]:
        return [len(b) for b in blobs]

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("big-map")
    s = wf.step("sizes")
    m = wf.map("blob", depends_on=[s])
    wf.step("lengths", depends_on=[m])
    run = await dagnats_env.client.start(wf)
    assert await run.result(timeout=WAIT_S) == [size, size + 1, size + 2]

    # Two sinks, both large: the result {sink: output} is resolved as a whole, and a map
    # sink's list of references too.
    wf2 = dagnats.Workflow("big-sinks")
    s2 = wf2.step("sizes")
    wf2.map("blob", depends_on=[s2])
    wf2.step("one", task="blob")
    run2 = await dagnats_env.client.start(wf2, size)
    out = await run2.result(timeout=WAIT_S)
    assert [len(x) for x in out["blob"]] == [size, size + 1, size + 2]
    assert len(out["one"]) == size
