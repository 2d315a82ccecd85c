"""Methodology: end-to-end runs through the public API (Client, Worker, DagnatsEnv) on a real
nats-server; each fault (bad ids, bad input, idempotency, engine restart, lost snapshot) is
injected for real and the run's outcome and history are checked, every wait bounded."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import dagnats
from dagnats import protocol
from dagnats.testing import DagnatsEnv


def pipeline_worker() -> dagnats.Worker:
    worker = dagnats.Worker(concurrency=8)

    @worker.task()
    async def greet(ctx: dagnats.TaskContext, name: str) -> str:
        return f"Hello, {name or 'World'}!"

    @worker.task()
    async def uppercase(ctx: dagnats.TaskContext, text: str) -> str:
        return text.upper()

    @worker.task()
    def reverse(ctx: dagnats.TaskContext, text: str) -> str:
        return text[::-1]

    return worker


def pipeline() -> dagnats.Workflow:
    wf = dagnats.Workflow("hello-pipeline")
    g = wf.step("greet")
    u = wf.step("uppercase", depends_on=[g])
    wf.step("reverse", depends_on=[u])
    return wf


async def test_three_step_pipeline(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(pipeline_worker())
    run = await dagnats_env.client.start(pipeline(), "World")
    assert await run.result(timeout=15) == "!DLROW ,OLLEH"
    state = await run.status()
    assert state.status == "completed"
    assert {k: s.status for k, s in state.steps.items()} == {
        "greet": "completed",
        "uppercase": "completed",
        "reverse": "completed",
    }
    assert state.steps["greet"].output == "Hello, World!"
    types = [e.type async for e in run.events()]
    assert types[0] == "workflow.started"
    assert types[-1] == "workflow.completed"
    assert types.count("step.completed") == 3


async def test_reference_workflow_runs_unchanged(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def greet(ctx: dagnats.TaskContext, name: str) -> str:
        return f"Hello, {name}!"

    @worker.task()
    async def uppercase(ctx: dagnats.TaskContext, text: str) -> str:
        return text.upper()

    dagnats_env.add_worker(worker)
    await dagnats_env.client.register(_reference("hello-world.json"))
    run = await dagnats_env.client.start("hello-world", "Ada")
    assert await run.result(timeout=15) == "HELLO, ADA!"


def _reference(name: str) -> str:
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / name
    return here.read_text()


async def test_unknown_workflow_and_run(dagnats_env: DagnatsEnv) -> None:
    with pytest.raises(dagnats.WorkflowNotFoundError, match="no-such-flow"):
        await dagnats_env.client.start("no-such-flow", 1)
    with pytest.raises(dagnats.RunNotFoundError, match="nope"):
        await dagnats_env.client.get_run("nope")
    with pytest.raises(dagnats.RunNotFoundError):
        await dagnats_env.client.run("nope").status()


async def test_typed_input_mismatch_fails_without_retry(dagnats_env: DagnatsEnv) -> None:
    class ReviewIn(BaseModel):
        repo: str
        branch: str

    worker = dagnats.Worker()
    calls = 0

    @worker.task()
    async def review(ctx: dagnats.TaskContext, inp: ReviewIn) -> int:
        nonlocal calls
        calls += 1
        return len(inp.repo)

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("review-flow")
    wf.step("review", retry=dagnats.RetryPolicy(max_attempts=3, initial_delay="10ms"))
    run = await dagnats_env.client.start(wf, {"repo": "x"})
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=15)
    assert info.value.step_id == "review"
    assert "branch" in str(info.value)
    assert calls == 0
    state = await run.status()
    assert state.steps["review"].attempts == 1


async def test_input_schema_rejects_bad_input_and_creates_no_run(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(pipeline_worker())
    wf = dagnats.Workflow("schema-flow", input_schema={"type": "string", "minLength": 2})
    wf.step("greet")
    with pytest.raises(dagnats.InputValidationError, match="string"):
        await dagnats_env.client.start(wf, {"name": 1})
    with pytest.raises(dagnats.InputValidationError, match=r"minLength|at least|short"):
        await dagnats_env.client.start(wf, "A")
    assert await dagnats_env.client.list_runs(workflow="schema-flow") == []
    run = await dagnats_env.client.start(wf, "Ada")
    assert await run.result(timeout=15) == "Hello, Ada!"


async def test_idempotency_key_dedups_starts(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(pipeline_worker())
    first = await dagnats_env.client.start(pipeline(), "A", idempotency_key="order-1")
    second = await dagnats_env.client.start(pipeline(), "B", idempotency_key="order-1")
    assert second.run_id == first.run_id and second.duplicate and not first.duplicate
    assert await second.result(timeout=15) == "!A ,OLLEH"
    runs = await dagnats_env.client.list_runs(workflow="hello-pipeline")
    assert [r.run_id for r in runs] == [first.run_id]


async def test_retry_then_success(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    attempts: list[int] = []

    @worker.task()
    async def flaky(ctx: dagnats.TaskContext, n: int) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"boom {ctx.attempt}")
        return n * 2

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("flaky-flow")
    wf.step(
        "flaky", retry=dagnats.RetryPolicy(max_attempts=3, strategy="fixed", initial_delay="20ms")
    )
    run = await dagnats_env.client.start(wf, 21)
    assert await run.result(timeout=15) == 42
    assert attempts == [1, 2, 3]
    types = [e.type async for e in run.events()]
    assert types.count("step.retrying") == 2


async def test_exhausted_retries_go_to_dead_letters(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def always_fails(ctx: dagnats.TaskContext) -> None:
        raise RuntimeError("disk on fire")

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("doomed")
    wf.step("always_fails", retry=dagnats.RetryPolicy(max_attempts=1, initial_delay="10ms"))
    run = await dagnats_env.client.start(wf)
    with pytest.raises(dagnats.RunFailedError, match="disk on fire") as info:
        await run.result(timeout=15)
    assert info.value.step_id == "always_fails"
    js = dagnats_env.nc.jetstream()
    msg = await js.get_last_msg(
        protocol.DLQ_STREAM, protocol.dead_letter_subject(run.run_id, "always_fails")
    )
    assert b"disk on fire" in (msg.data or b"")


async def test_engine_restart_mid_run_resumes(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    started = asyncio.Event()

    @worker.task()
    async def slow(ctx: dagnats.TaskContext, x: int) -> int:
        started.set()
        await asyncio.wait_for(gate.wait(), 10)
        return x + 1

    @worker.task()
    async def after(ctx: dagnats.TaskContext, x: int) -> int:
        return x * 10

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("restart-flow")
    s = wf.step("slow")
    wf.step("after", depends_on=[s])
    run = await dagnats_env.client.start(wf, 1)
    await asyncio.wait_for(started.wait(), 10)
    await dagnats_env.stop_engine()
    gate.set()  # the result lands in history while no engine runs
    await asyncio.sleep(0.2)  # let the worker publish its result before the restart
    await dagnats_env.start_engine()
    assert await run.result(timeout=15) == 20


async def test_lost_snapshot_is_rebuilt_from_history(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    started = asyncio.Event()

    @worker.task()
    async def first(ctx: dagnats.TaskContext, x: int) -> int:
        return x + 1

    @worker.task()
    async def second(ctx: dagnats.TaskContext, x: int) -> int:
        started.set()
        await asyncio.wait_for(gate.wait(), 10)
        return x + 1

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("replay-flow")
    f = wf.step("first")
    wf.step("second", depends_on=[f])
    run = await dagnats_env.client.start(wf, 1)
    await asyncio.wait_for(started.wait(), 10)
    await dagnats_env.stop_engine()
    kv = await dagnats_env.nc.jetstream().key_value(protocol.KV_RUNS)
    await kv.purge(run.run_id)
    await dagnats_env.start_engine()
    gate.set()
    assert await run.result(timeout=15) == 3


async def test_cancel_running_run_stops_its_handler(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    started = asyncio.Event()
    stopped = asyncio.Event()

    @worker.task()
    async def forever(ctx: dagnats.TaskContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # until the run is cancelled
        except asyncio.CancelledError:
            stopped.set()  # the engine announced the run's end; the worker cancelled us
            raise

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("cancel-flow")
    wf.step("forever")
    run = await dagnats_env.client.start(wf)
    await asyncio.wait_for(started.wait(), 10)
    assert await run.cancel("test") is True
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=10)
    assert (await run.status()).steps["forever"].status == "cancelled"
    await asyncio.wait_for(stopped.wait(), 5)
    assert worker.stats.abandoned == 1


async def test_harness_without_pytest() -> None:
    async with DagnatsEnv.start() as env:
        env.add_worker(pipeline_worker())
        run = await env.client.start(pipeline(), "Ada")
        assert await run.result(timeout=15) == "!ADA ,OLLEH"


async def test_status_is_exact_while_snapshots_lag(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    started = asyncio.Event()

    @worker.task()
    async def quick(ctx: dagnats.TaskContext, x: int) -> int:
        return x + 1

    @worker.task()
    async def held(ctx: dagnats.TaskContext, x: int) -> int:
        started.set()
        await asyncio.wait_for(gate.wait(), 10)
        return x

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("status-flow")
    q = wf.step("quick")
    wf.step("held", depends_on=[q])
    run = await dagnats_env.client.start(wf, 1)
    await asyncio.wait_for(started.wait(), 10)
    # No waiting for a snapshot flush: the API folds the log's newer events in.
    state = await run.status()
    assert state.status == "running"
    assert state.steps["quick"].status == "completed" and state.steps["quick"].output == 2
    assert state.steps["held"].status in ("queued", "running")
    gate.set()
    assert await run.result(timeout=10) == 2


async def test_large_input_and_output_travel_by_reference(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def grow(ctx: dagnats.TaskContext, text: str) -> str:
        return text * 3  # 3 x 1.2 MiB: far over one NATS message

    @worker.task()
    async def measure(ctx: dagnats.TaskContext, text: str) -> int:
        return len(text)

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("big-flow")
    g = wf.step("grow")
    wf.step("measure", depends_on=[g])
    big = "x" * (1200 * 1024)
    run = await dagnats_env.client.start(wf, big)
    assert await run.result(timeout=30) == 3 * len(big)


async def test_signals_are_recorded_in_the_history(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def wait_go(ctx: dagnats.TaskContext) -> object:
        return await ctx.wait_for_signal("go", timeout="10s")

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("signal-flow")
    wf.step("wait_go")
    run = await dagnats_env.client.start(wf)
    await run.signal("go", {"ok": True})
    assert await run.result(timeout=15) == {"ok": True}
    signals = [e for e in [e async for e in run.events()] if e.type == "signal.received"]
    assert [e.data for e in signals] == [{"name": "go", "data": {"ok": True}}]


async def test_run_ids_are_not_reused_too_soon(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(pipeline_worker())
    first = await dagnats_env.client.start(pipeline(), "A", run_id="reused-id")
    assert await first.result(timeout=15) == "!A ,OLLEH"
    await dagnats_env.client.delete_run("reused-id")
    # Its task and record ids are still in the streams' dedup window: refused clearly.
    with pytest.raises(dagnats.ApiError, match="deleted less than"):
        await dagnats_env.client.start(pipeline(), "B", run_id="reused-id")
    live = await dagnats_env.client.start(pipeline(), "C", run_id="live-id")
    await live.result(timeout=15)
    with pytest.raises(dagnats.ApiError, match="already exists"):
        await dagnats_env.client.start(pipeline(), "D", run_id="live-id")
