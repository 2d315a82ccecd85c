"""Methodology: each TaskContext helper used by a real handler in a real run, seen from outside."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import dagnats
from dagnats import protocol
from dagnats._nats.kvscan import scan
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S


async def test_checkpoint_survives_a_retry_and_is_cleaned_up(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    seen: list[tuple[int, Any, list[str]]] = []
    kv = await dagnats_env.nc.jetstream().key_value(protocol.KV_CHECKPOINTS)

    @worker.task()
    async def resumable(ctx: dagnats.TaskContext, n: int) -> int:
        done = await ctx.load_checkpoint()
        stored = [e.key for e in await scan(kv, f"{ctx.run_id}.>", limit=10)]
        seen.append((ctx.attempt, done, stored))
        if ctx.attempt == 1:
            await ctx.checkpoint({"done": 3})
            raise RuntimeError("crashed after item 3")
        return int(done["done"]) + n

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("checkpoint-flow")
    wf.step("resumable", retry=dagnats.RetryPolicy(max_attempts=2, initial_delay="20ms"))
    run = await dagnats_env.client.start(wf, 10)
    assert await run.result(timeout=WAIT_S) == 13
    key = f"{run.run_id}.resumable"
    assert seen == [(1, None, []), (2, {"done": 3}, [key])]
    # The run ended: its checkpoints are purged, off the critical path; wait for that
    # background clean-up (bounded), then list what is left under the run's prefix.
    assert dagnats_env.engine is not None
    await dagnats_env.engine.executor.drain()
    assert await scan(kv, f"{run.run_id}.>", limit=10) == []


async def test_wait_for_signal_sent_before_and_after(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    waiting_late = asyncio.Event()

    @worker.task()
    async def gate(ctx: dagnats.TaskContext) -> dict[str, Any]:
        early = await ctx.wait_for_signal("early", timeout="5s")
        waiting_late.set()
        late = await ctx.wait_for_signal("late", timeout="10s")
        other = await ctx.wait_for_signal("other", timeout="10s")
        return {"early": early, "late": late, "other": other}

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("signal-flow")
    wf.step("gate")
    client = dagnats_env.client
    run_id = "signal-run-1"
    # Sent before the run even exists: a signal is a value, the wait returns it at once.
    await client.send_signal(run_id, "early", {"v": 1})
    run = await client.start(wf, None, run_id=run_id)
    await asyncio.wait_for(waiting_late.wait(), WAIT_S)
    await run.signal("late", {"v": 2})
    await client.send_signal(run_id, "other", [3])
    assert await run.result(timeout=WAIT_S) == {"early": {"v": 1}, "late": {"v": 2}, "other": [3]}


async def test_wait_for_signal_timeout_fails_the_attempt(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def impatient(ctx: dagnats.TaskContext) -> None:
        await ctx.wait_for_signal("never", timeout="100ms")

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("signal-timeout-flow")
    wf.step("impatient")
    run = await dagnats_env.client.start(wf)
    with pytest.raises(dagnats.RunFailedError, match=r"never.*did not arrive within 100ms"):
        await run.result(timeout=WAIT_S)


async def test_put_stream_chunks_arrive_in_order(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def talk(ctx: dagnats.TaskContext, n: int) -> int:
        await ctx.wait_for_signal("go", timeout="10s")
        for i in range(n):
            await ctx.put_stream({"token": i})
        return n

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("stream-flow")
    wf.step("talk")
    run = await dagnats_env.client.start(wf, 50)
    got: list[Any] = []

    async def read() -> None:
        async for chunk in run.stream("talk", timeout=WAIT_S):
            got.append(chunk)

    reader = asyncio.create_task(read())
    # One turn of the loop lets the reader queue its SUB on the client's connection; the
    # signal request is queued after it on the same connection, so the server has the
    # subscription before the handler can send a chunk (streams are ephemeral).
    await asyncio.sleep(0)
    await dagnats_env.nc.flush()
    await run.signal("go")
    await asyncio.wait_for(reader, WAIT_S)
    assert got == [{"token": i} for i in range(50)]
    assert await run.result(timeout=WAIT_S) == 50


async def test_worker_group_runs_only_on_its_workers_retries_included(
    dagnats_env: DagnatsEnv,
) -> None:
    ran: list[tuple[str, str, int]] = []

    def make(name: str, **options: Any) -> dagnats.Worker:
        worker = dagnats.Worker(name=name, **options)

        @worker.task()
        async def render(ctx: dagnats.TaskContext, x: int) -> str:
            ran.append((name, ctx.step_id, ctx.attempt))
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            return f"{name}:{x}"

        @worker.task()
        async def prep(ctx: dagnats.TaskContext, x: int) -> int:
            ran.append((name, ctx.step_id, ctx.attempt))
            return x

        return worker

    dagnats_env.add_worker(make("plain"))
    dagnats_env.add_worker(make("gpu-box", groups=["gpu"], serve_ungrouped=False))
    await dagnats_env.wait_workers_ready()
    wf = dagnats.Workflow("group-flow")
    p = wf.step("prep")
    wf.step(
        "render",
        depends_on=[p],
        worker_group="gpu",
        retry=dagnats.RetryPolicy(max_attempts=2, initial_delay="20ms"),
    )
    results = []
    for i in range(3):
        run = await dagnats_env.client.start(wf, i)
        results.append(await run.result(timeout=WAIT_S))
    assert results == ["gpu-box:0", "gpu-box:1", "gpu-box:2"]
    renders = [r for r in ran if r[1] == "render"]
    assert renders == [("gpu-box", "render", a) for _ in range(3) for a in (1, 2)]
    # The ungrouped step went to the only worker serving ungrouped subjects.
    assert [r[0] for r in ran if r[1] == "prep"] == ["plain"] * 3


async def test_worker_directory_lists_a_running_worker(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker(name="listed", groups=["gpu"])

    @worker.task()
    async def noop(ctx: dagnats.TaskContext) -> None:
        return None

    dagnats_env.add_worker(worker)
    await dagnats_env.wait_workers_ready()
    kv = await dagnats_env.nc.jetstream().key_value(protocol.KV_WORKERS)
    entry = await kv.get(worker.id)
    assert entry.value is not None
    info = json.loads(entry.value)
    assert info["name"] == "listed"
    assert "noop" in info["tasks"]
    assert info["groups"] == ["gpu"]
    assert worker.id in await kv.keys()
