"""Methodology: one real run per known Go DagNats weakness, asserting what users expect instead."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import dagnats
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, event_types, reference, wait_event, wait_state


async def test_on_failure_handler_without_dependencies_is_never_a_first_step(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker()
    ran: list[tuple[str, Any]] = []

    @worker.task()
    async def fetch(ctx: dagnats.TaskContext, url: str) -> str:
        ran.append(("fetch", url))
        if url == "bad":
            # Final at once: the reference policy's 1s/2s/4s backoff is not under test.
            raise dagnats.NonRetryableError("404 not found")
        return f"<{url}>"

    @worker.task()
    async def process(ctx: dagnats.TaskContext, body: Any) -> Any:
        ran.append(("process", body))
        return {"processed": body}

    @worker.task("report-error")
    async def report_error(ctx: dagnats.TaskContext, info: dict[str, Any]) -> str:
        ran.append(("report-error", info["failed_step"]))
        return f"reported: {info['error']}"

    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    await client.register(reference("retry-errors.json"))
    ok = await client.start("retry-errors", "good")
    assert await ok.result(timeout=WAIT_S) == {"processed": "<good>"}
    assert ran == [("fetch", "good"), ("process", "<good>")]
    assert (await ok.status()).steps["report-error"].status == "skipped"

    ran.clear()
    bad = await client.start("retry-errors", "bad")
    assert await bad.result(timeout=WAIT_S) == {"processed": "reported: 404 not found"}
    assert ran == [
        ("fetch", "bad"),
        ("report-error", "fetch"),
        ("process", "reported: 404 not found"),
    ]
    assert (await bad.status()).steps["fetch"].status == "recovered"


async def test_map_over_an_empty_array_completes(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    resized: list[str] = []

    @worker.task("fetch-urls")
    async def fetch_urls(ctx: dagnats.TaskContext) -> list[str]:
        return []

    @worker.task("resize-image")
    async def resize_image(ctx: dagnats.TaskContext, url: str) -> str:
        resized.append(url)
        return url

    @worker.task("build-gallery")
    async def build_gallery(ctx: dagnats.TaskContext, images: list[str]) -> dict[str, Any]:
        return {"images": images, "count": len(images)}

    dagnats_env.add_worker(worker)
    await dagnats_env.client.register(reference("map-step.json"))
    run = await dagnats_env.client.start("image-pipeline")
    assert await run.result(timeout=WAIT_S) == {"images": [], "count": 0}
    assert resized == []
    assert (await run.status()).steps["resize"].output == []


async def test_workflow_timeout_fires_without_any_further_event(dagnats_env: DagnatsEnv) -> None:
    # No worker serves the step: after the start nothing at all happens in the run but
    # the timeout timer itself.
    wf = dagnats.Workflow("silent-flow", timeout="300ms")
    wf.step("nobody-serves-this")
    run = await dagnats_env.client.start(wf)
    with pytest.raises(dagnats.RunFailedError, match="timed out after 300ms"):
        await run.result(timeout=WAIT_S)
    state = await run.status()
    assert state.status == "failed"
    assert state.steps["nobody-serves-this"].status == "cancelled"


async def test_retries_keep_the_worker_group_and_the_limits(dagnats_env: DagnatsEnv) -> None:
    ran: list[tuple[str, int | None, int]] = []
    starts: list[float] = []
    running = 0
    peak = 0

    def make(name: str, **options: Any) -> dagnats.Worker:
        worker = dagnats.Worker(name=name, concurrency=8, **options)

        @worker.task()
        async def items(ctx: dagnats.TaskContext) -> list[int]:
            return [1, 2, 3]

        @worker.task()
        async def infer(ctx: dagnats.TaskContext, x: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            starts.append(time.monotonic())
            ran.append((name, ctx.item, ctx.attempt))
            try:
                await asyncio.sleep(0.02)
                if ctx.attempt == 1:
                    raise RuntimeError("GPU out of memory")
                return x * 2
            finally:
                running -= 1

        return worker

    dagnats_env.add_worker(make("cpu"))
    dagnats_env.add_worker(make("gpu", groups=["gpu"], serve_ungrouped=False))
    await dagnats_env.wait_workers_ready()
    wf = dagnats.Workflow("gpu-map")
    i = wf.step("items")
    wf.map(
        "infer",
        depends_on=[i],
        worker_group="gpu",
        max_task_concurrency=1,
        rate_limit={"limit": 2, "period": "400ms"},
        retry=dagnats.RetryPolicy(max_attempts=1, initial_delay="10ms"),
    )
    run = await dagnats_env.client.start(wf)
    assert await run.result(timeout=WAIT_S) == [2, 4, 6]
    assert sorted(ran) == [("gpu", item, a) for item in (0, 1, 2) for a in (1, 2)]
    assert peak == 1
    starts.sort()
    # 6 starts at 2 per 400ms after a burst of 2: at least 4 refills of 200ms.
    assert starts[-1] - starts[0] >= 4 * 0.2 * 0.9


def saga_worker(log: list[str], *, failing_task: str | None = None) -> dagnats.Worker:
    worker = dagnats.Worker(concurrency=8)
    active = 0

    def make(name: str) -> None:
        async def handler(ctx: dagnats.TaskContext, inp: Any) -> Any:
            nonlocal active
            active += 1
            try:
                log.append(name if active == 1 else f"{name} (overlapping!)")
                await asyncio.sleep(0.01)
                if name == failing_task:
                    raise dagnats.NonRetryableError(f"{name} is broken")
                return {"by": name, "input": inp}
            finally:
                active -= 1

        handler.__name__ = name.replace("-", "_")
        worker.task(name)(handler)

    for name in ("book", "unbook", "escalate", "a", "b", "c", "d", "undo-a", "undo-b"):
        make(name)
    for name in ("undo-c", "undo-d", "explode"):
        make(name)
    return worker


async def test_approval_rejection_triggers_on_failure_and_compensation(
    dagnats_env: DagnatsEnv,
) -> None:
    log: list[str] = []
    dagnats_env.add_worker(saga_worker(log))
    client = dagnats_env.client

    # on_failure: a rejected approval is recovered by its handler and the run goes on.
    wf = dagnats.Workflow("approve-or-escalate")
    ap = wf.approval("sign-off", timeout="1m", on_failure="escalate")
    wf.step("book", depends_on=[ap])
    wf.step("escalate")
    run = await client.start(wf, {})
    token = (await wait_event(run, ev.STEP_APPROVAL_REQUESTED)).data["token"]
    await client.reject(token, "over budget")
    out = await run.result(timeout=WAIT_S)
    assert out["by"] == "book"
    assert out["input"]["by"] == "escalate"
    assert "over budget" in out["input"]["input"]["error"]
    assert log == ["escalate", "book"]

    # compensation: a rejected approval undoes the booking made before it.
    log.clear()
    wf = dagnats.Workflow("book-then-approve")
    b = wf.step("book", compensate="unbook")
    wf.approval("sign-off", timeout="1m", depends_on=[b])
    wf.step("unbook")
    run = await client.start(wf, {})
    token = (await wait_event(run, ev.STEP_APPROVAL_REQUESTED)).data["token"]
    await client.reject(token, "no")
    with pytest.raises(dagnats.RunFailedError, match="rejected: no") as info:
        await run.result(timeout=WAIT_S)
    assert info.value.status == "compensated"
    assert log == ["book", "unbook"]


async def test_sub_workflow_failure_triggers_on_failure_and_compensation(
    dagnats_env: DagnatsEnv,
) -> None:
    log: list[str] = []
    dagnats_env.add_worker(saga_worker(log, failing_task="explode"))
    client = dagnats_env.client
    child = dagnats.Workflow("exploding-child")
    child.step("explode")
    await client.register(child)

    wf = dagnats.Workflow("child-or-escalate")
    wf.sub_workflow("call", workflow="exploding-child", on_failure="escalate")
    wf.step("escalate")
    run = await client.start(wf, {})
    out = await run.result(timeout=WAIT_S)
    assert out["by"] == "escalate"
    assert "explode is broken" in out["input"]["error"]

    log.clear()
    wf = dagnats.Workflow("book-then-child")
    b = wf.step("book", compensate="unbook")
    wf.sub_workflow("call", workflow="exploding-child", depends_on=[b])
    wf.step("unbook")
    run = await client.start(wf, {})
    with pytest.raises(dagnats.RunFailedError, match="explode is broken") as info:
        await run.result(timeout=WAIT_S)
    assert info.value.status == "compensated"
    assert log == ["book", "explode", "unbook"]


async def test_compensation_of_four_steps_runs_in_true_reverse_order(
    dagnats_env: DagnatsEnv,
) -> None:
    log: list[str] = []
    dagnats_env.add_worker(saga_worker(log, failing_task="explode"))
    wf = dagnats.Workflow("four-step-saga")
    prev: list[dagnats.StepRef] = []
    for name in ("a", "b", "c", "d"):
        prev = [wf.step(name, depends_on=prev, compensate=f"undo-{name}")]
    wf.step("explode", depends_on=prev)
    for name in ("a", "b", "c", "d"):
        wf.step(f"undo-{name}")
    run = await dagnats_env.client.start(wf, {})
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=WAIT_S)
    assert info.value.status == "compensated"
    assert log == ["a", "b", "c", "d", "explode", "undo-d", "undo-c", "undo-b", "undo-a"]
    types = await event_types(run)
    assert types.count(ev.COMPENSATE_STEP) == 4


async def test_loop_delay_survives_an_engine_restart(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    seen: list[int] = []

    @worker.task()
    async def counter(ctx: dagnats.TaskContext, n: int | None) -> int | dagnats.Continue[int]:
        seen.append(ctx.iteration)
        n = n or 0
        return dagnats.Continue(n + 1) if n < 2 else n

    dagnats_env.add_worker(worker)
    await dagnats_env.client.register(reference("agent-loop.json"))  # loop_delay: 1s
    run = await dagnats_env.client.start("agent-loop", 0)
    await wait_state(
        dagnats_env,
        run.run_id,
        lambda s: s.steps["counter"].waiting == "loop_delay" and s.steps["counter"].iteration == 1,
    )
    # Down and up again well inside the 1s delay: the new engine's timers fire it.
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine()
    assert await run.result(timeout=WAIT_S) == 2
    assert seen == [0, 1, 2]
