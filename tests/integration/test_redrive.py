"""Methodology: redrive and bulk operations end to end on a real nats-server, via the client.

A worker whose failure is switched by the test makes runs fail at a known step; the tests
then retry, rerun, replay and cancel through the public client and check what ran again
(counted by the handlers themselves) and what the runs' states and histories say.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dagnats
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, event_types, wait_state

FAST = dagnats.RetryPolicy(max_attempts=1, strategy="fixed", initial_delay="10ms")


class Flaky:
    """Tasks ``fetch`` -> ``transform`` -> ``store``; ``transform`` fails while ``broken``."""

    def __init__(self) -> None:
        self.broken = True
        self.calls: dict[str, int] = {}
        self.worker = dagnats.Worker()
        w = self.worker

        @w.task()
        async def fetch(ctx: dagnats.TaskContext, inp: Any) -> Any:
            self.calls["fetch"] = self.calls.get("fetch", 0) + 1
            return {"n": inp}

        @w.task()
        async def transform(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> Any:
            self.calls["transform"] = self.calls.get("transform", 0) + 1
            if self.broken:
                raise RuntimeError("transform is broken")
            return inp["n"] * 10

        @w.task()
        async def store(ctx: dagnats.TaskContext, inp: int) -> str:
            self.calls["store"] = self.calls.get("store", 0) + 1
            return f"stored {inp}"

    def workflow(self, name: str, **options: Any) -> dagnats.Workflow:
        wf = dagnats.Workflow(name, **options)
        f = wf.step("fetch")
        t = wf.step("transform", depends_on=[f], retry=FAST)
        wf.step("store", depends_on=[t])
        return wf


async def _failed_run(env: DagnatsEnv, flaky: Flaky, name: str) -> dagnats.RunHandle:
    env.add_worker(flaky.worker)
    run = await env.client.start(flaky.workflow(name), 4)
    with pytest.raises(dagnats.RunFailedError, match="transform is broken"):
        await run.result(timeout=WAIT_S)
    return run


async def test_retry_resumes_from_the_failed_step(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "retry-flow")
    assert flaky.calls == {"fetch": 1, "transform": 2}  # one retry by the policy
    flaky.broken = False
    again = await dagnats_env.client.retry_run(run.run_id, reason="fixed the bug")
    assert again.run_id == run.run_id
    assert await again.result(timeout=WAIT_S) == "stored 40"
    assert flaky.calls == {"fetch": 1, "transform": 3, "store": 1}  # fetch never again
    state = await again.status()
    assert state.retries == 1 and state.status == "completed"
    assert state.steps["fetch"].attempts == 1
    assert state.steps["transform"].attempts == 3  # the next attempt, not attempt 1 again
    types = await event_types(again)
    assert types.count(ev.WORKFLOW_RETRY_REQUESTED) == 1
    assert types.count(ev.WORKFLOW_FAILED) == 1 and types[-1] == ev.WORKFLOW_COMPLETED


async def test_retry_gives_the_policy_its_budget_again(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "retry-budget")
    again = await dagnats_env.client.retry_run(run.run_id)
    with pytest.raises(dagnats.RunFailedError):
        await again.result(timeout=WAIT_S)
    assert flaky.calls["transform"] == 4  # two attempts per incarnation
    state = await again.status()
    assert state.retries == 1 and state.steps["transform"].attempts == 4
    assert (await event_types(again)).count(ev.WORKFLOW_FAILED) == 2  # both recorded


async def test_retry_of_a_running_or_completed_run_is_refused(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()

    @worker.task()
    async def hold(ctx: dagnats.TaskContext, inp: Any) -> str:
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return "done"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("retry-refused")
    wf.step("hold")
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.ApiError, match="is running; only a failed or cancelled"):
        await dagnats_env.client.retry_run(run.run_id)
    gate.set()
    assert await run.result(timeout=WAIT_S) == "done"
    with pytest.raises(dagnats.ApiError, match="is completed") as info:
        await dagnats_env.client.retry_run(run.run_id)
    assert info.value.code == 409
    with pytest.raises(dagnats.RunNotFoundError):
        await dagnats_env.client.retry_run("ffffffffffff0000")


async def test_retry_of_a_cancelled_run(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    ran: list[str] = []

    @worker.task()
    async def first(ctx: dagnats.TaskContext, inp: Any) -> str:
        ran.append("first")
        return "one"

    @worker.task()
    async def second(ctx: dagnats.TaskContext, inp: Any) -> str:
        ran.append("second")
        if not gate.is_set():
            await asyncio.sleep(WAIT_S)  # cancelled with its run
        return f"{inp} two"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("retry-cancelled")
    wf.step("second", depends_on=[wf.step("first")])
    run = await dagnats_env.client.start(wf, None)
    async for e in run.events(follow=True, timeout=WAIT_S):
        if e.type == ev.STEP_STARTED and e.step_id == "second":
            break
    await run.cancel()
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=WAIT_S)
    gate.set()
    again = await dagnats_env.client.retry_run(run.run_id)
    assert await again.result(timeout=WAIT_S) == "one two"
    assert ran == ["first", "second", "second"]


async def test_rerun_is_a_new_linked_run(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "rerun-flow")
    flaky.broken = False
    new = await dagnats_env.client.rerun(run.run_id[:20])  # a prefix names the run
    assert new.run_id != run.run_id
    assert await new.result(timeout=WAIT_S) == "stored 40"
    state = await new.status()
    old = await run.status()
    assert state.rerun_of == run.run_id and state.input == 4
    assert state.revision == old.revision and old.status == "failed"
    assert flaky.calls["fetch"] == 2  # a whole new run


async def test_dead_letter_replay_once(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "replay-flow")
    client = dagnats_env.client
    letters = await client.list_dead_letters(run_id=run.run_id)
    assert [(d.step_id, d.attempts) for d in letters] == [("transform", 2)]
    assert "transform is broken" in str(letters[0].error)
    flaky.broken = False
    again = await client.replay_dead_letter(letters[0].seq)
    assert await again.result(timeout=WAIT_S) == "stored 40"
    assert await client.list_dead_letters(run_id=run.run_id) == []
    with pytest.raises(dagnats.NotFoundError, match="already replayed"):
        await client.replay_dead_letter(letters[0].seq)
    assert flaky.calls == {"fetch": 1, "transform": 3, "store": 1}


async def test_dead_letter_replay_by_run(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "replay-run")
    flaky.broken = False
    again = await dagnats_env.client.replay_dead_letter(run_id=run.run_id)
    assert await again.result(timeout=WAIT_S) == "stored 40"
    with pytest.raises(dagnats.NotFoundError, match="no dead letters"):
        await dagnats_env.client.replay_dead_letter(run_id=run.run_id)


async def test_start_many_reports_each_item(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, inp: int) -> int:
        return inp * 2

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("many-flow", input_schema={"type": "integer"})
    wf.step("double")
    await dagnats_env.client.register(wf)
    results = await dagnats_env.client.start_many(
        "many-flow", [1, 2, "three", 4], idempotency_keys=["k1", None, None, "k1"]
    )
    assert [r.ok for r in results] == [True, True, False, True]
    assert results[2].error is not None and results[2].error["kind"] == "InputValidationError"
    assert results[3].duplicate and results[3].run_id == results[0].run_id
    outs = [await dagnats_env.client.run(str(r.run_id)).result(timeout=WAIT_S) for r in results[:2]]
    assert outs == [2, 4]
    with pytest.raises(dagnats.WorkflowNotFoundError):
        await dagnats_env.client.start_many("no-such-flow", [1])
    with pytest.raises(ValueError, match="more than 1000"):
        await dagnats_env.client.start_many("many-flow", list(range(1001)))


async def test_cancel_runs_by_filter(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def park(ctx: dagnats.TaskContext, inp: Any) -> str:
        await asyncio.sleep(WAIT_S)
        return "late"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("cancel-many")
    wf.step("park")
    await dagnats_env.client.register(wf)
    results = await dagnats_env.client.start_many("cancel-many", [1, 2, 3])
    ids = {r.run_id for r in results}
    for run_id in ids:
        assert run_id is not None
        await wait_state(dagnats_env, run_id, lambda s: s.steps["park"].status == "running")
    client = dagnats_env.client
    with pytest.raises(dagnats.ApiError, match="takes a filter"):
        await client.cancel_runs()
    dry = await client.cancel_runs(workflow="cancel-many", dry_run=True)
    assert dry.cancelled == 0 and dry.dry_run and set(dry) == ids
    done = await client.cancel_runs(workflow="cancel-many")
    assert set(done) == ids and done.cancelled == 3 and done.matched == 3
    for run_id in done:
        with pytest.raises(dagnats.RunCancelledError):
            await client.run(run_id).result(timeout=WAIT_S)
    again = await client.cancel_runs(run_ids=sorted(done.run_ids))
    assert again.cancelled == 0 and sorted(again.already_finished) == sorted(done.run_ids)


async def test_prefixes_last_and_listing_order(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def echo(ctx: dagnats.TaskContext, inp: Any) -> Any:
        return inp

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("list-order")
    wf.step("echo")
    client = dagnats_env.client
    a = await client.start(wf, 1, run_id="zzzz-custom-old")
    await a.result(timeout=WAIT_S)
    b = await client.start(wf, 2)
    await b.result(timeout=WAIT_S)
    rows = await client.list_runs(workflow="list-order")
    # newest first by creation time, not by id (the custom id sorts after the generated one)
    assert [r.run_id for r in rows] == [b.run_id, a.run_id]
    assert await client.last_run_id("list-order") == b.run_id
    assert await client.resolve_run_id(b.run_id[:26]) == b.run_id
    with pytest.raises(dagnats.ApiError, match="at least 8 characters") as short:
        await client.resolve_run_id("zzzz")
    assert "zzzz-custom-old" in str(short.value)
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await client.list_runs(workflow="list-order", since=future) == []
    past = await client.list_runs(since=datetime.now(UTC) - timedelta(hours=1))
    assert {r.run_id for r in past} >= {a.run_id, b.run_id}
    with pytest.raises(dagnats.ApiError, match="RFC 3339"):
        await client.list_runs(since="yesterday")


async def test_retry_of_a_limited_workflow_queues_for_its_slot(dagnats_env: DagnatsEnv) -> None:
    flaky = Flaky()
    dagnats_env.add_worker(flaky.worker)
    wf = flaky.workflow("retry-singleton", singleton=True)
    run = await dagnats_env.client.start(wf, 2)
    with pytest.raises(dagnats.RunFailedError):
        await run.result(timeout=WAIT_S)
    flaky.broken = False
    # Within the streams' dedup window of its first admission: admitted again all the same.
    again = await dagnats_env.client.retry_run(run.run_id)
    assert await again.result(timeout=WAIT_S) == "stored 20"
    assert (await event_types(again)).count(ev.WORKFLOW_ADMITTED) == 2


async def test_retry_rearms_timers_of_the_resumed_run(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()
    attempts: list[int] = []

    @worker.task()
    async def wobbly(ctx: dagnats.TaskContext, inp: Any) -> str:
        attempts.append(ctx.attempt)
        if len(attempts) < 4:
            raise RuntimeError(f"try {len(attempts)}")
        return "steady"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("retry-timers", timeout="1m")
    wf.step("wobbly", retry=FAST)
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError, match="try 2"):
        await run.result(timeout=WAIT_S)
    again = await dagnats_env.client.retry_run(run.run_id)
    assert await again.result(timeout=WAIT_S) == "steady"  # its retry timer fired
    assert attempts == [1, 2, 3, 4]
