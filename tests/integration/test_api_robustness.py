"""Methodology: the API service and client under the faults a reviewer found, each injected for
real on a real nats-server (``dagnats_env``): a JetStream publish that fails after the approval
token or idempotency key was stored (the context's ``publish`` raises once), a stale
idempotency key, a run deleted while it runs (with and without an engine to end it), a reply
larger than a NATS message, a full request table, a second client re-registering a workflow,
a lost terminal announcement (the handle listens on a subject nobody announces on), and
handles on unknown or already finished runs. Every wait is bounded."""

from __future__ import annotations

import asyncio
import hashlib
import json
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import dagnats
import dagnats.client.handle as handle_mod
import dagnats.server.api as api_mod
import dagnats.server.operations as ops_mod
from dagnats import protocol
from dagnats._nats.kvscan import list_keys
from dagnats._nats.types import ObjectNotFoundError
from dagnats.client import Client
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv

WAIT_S = 20.0


def _ops(env: DagnatsEnv) -> ops_mod.Operations:
    assert env.api is not None
    return env.api.ops


def _fail_once(
    monkeypatch: pytest.MonkeyPatch,
    env: DagnatsEnv,
    when: Callable[[str, bytes], bool],
    error: Exception | None = None,
) -> list[str]:
    """Make the API's next JetStream publish matching ``when`` raise ``error`` (once)."""
    js = _ops(env).js
    real: Callable[..., Awaitable[Any]] = js.publish
    failed: list[str] = []

    async def publish(subject: str, payload: bytes = b"", **kw: Any) -> Any:
        if not failed and when(subject, payload):
            failed.append(subject)
            raise error or ConnectionError("injected: publish lost")
        return await real(subject, payload, **kw)

    monkeypatch.setattr(js, "publish", publish)
    return failed


def _is(subject: str, data: bytes, event_type: str) -> bool:
    """A history publish of this event type (the KV updates go through publish too)."""
    if not subject.startswith("history."):
        return False
    return bool(json.loads(data).get("type") == event_type)


async def _token(run: dagnats.RunHandle) -> str:
    async for event in run.events(follow=True, timeout=WAIT_S):
        if event.type == "step.approval.requested":
            token: str = event.data["token"]
            return token
    raise AssertionError("no approval requested")


def _approval_flow(env: DagnatsEnv) -> dagnats.Workflow:
    worker = dagnats.Worker()

    @worker.task()
    async def after(ctx: dagnats.TaskContext, decision: Any) -> Any:
        return decision

    env.add_worker(worker)
    wf = dagnats.Workflow("robust-approval")
    a = wf.approval("ok", timeout="1m")
    wf.step("after", depends_on=[a])
    return wf


# --- 1. approval decisions -----------------------------------------------------------------


async def test_approval_retry_after_a_lost_publish_delivers_the_decision(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dagnats_env.client
    run = await client.start(_approval_flow(dagnats_env))
    token = await _token(run)
    failed = _fail_once(
        monkeypatch, dagnats_env, lambda subj, data: _is(subj, data, ev.STEP_APPROVED)
    )
    with pytest.raises(dagnats.ApiError):
        await client.approve(token, {"by": "ada"})
    assert failed  # the token is consumed, the decision was not published
    await client.approve(token, {"by": "ada"})  # the retry publishes it
    assert await run.result(timeout=WAIT_S) == {"by": "ada"}
    await client.approve(token, {"by": "ada"})  # a double click: fine, deduplicated
    approved = [e async for e in run.events() if e.type == ev.STEP_APPROVED]
    assert len(approved) == 1
    with pytest.raises(dagnats.ApprovalError, match="already used"):
        await client.approve(token, {"by": "mallory"})
    with pytest.raises(dagnats.ApprovalError, match="already used"):
        await client.reject(token, "no")


async def test_rejection_retry_is_answered_and_other_decisions_are_refused(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dagnats_env.client
    run = await client.start(_approval_flow(dagnats_env))
    token = await _token(run)
    _fail_once(monkeypatch, dagnats_env, lambda subj, data: _is(subj, data, ev.STEP_REJECTED))
    with pytest.raises(dagnats.ApiError):
        await client.reject(token, "freeze")
    with pytest.raises(dagnats.ApprovalError, match="already used"):
        await client.reject(token, "another reason")
    with pytest.raises(dagnats.ApprovalError, match="already used"):
        await client.approve(token)
    await client.reject(token, "freeze")
    with pytest.raises(dagnats.RunFailedError, match="freeze"):
        await run.result(timeout=WAIT_S)


# --- 2. idempotency keys -------------------------------------------------------------------


def _echo_flow(env: DagnatsEnv, name: str = "robust-echo") -> dagnats.Workflow:
    worker = dagnats.Worker()

    @worker.task()
    async def echo(ctx: dagnats.TaskContext, value: Any) -> Any:
        return value

    env.add_worker(worker)
    wf = dagnats.Workflow(name)
    wf.step("echo")
    return wf


async def test_failed_start_releases_its_idempotency_key(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dagnats_env.client
    wf = _echo_flow(dagnats_env)
    await client.register(wf)
    failed = _fail_once(
        monkeypatch, dagnats_env, lambda subj, data: _is(subj, data, ev.WORKFLOW_STARTED)
    )
    with pytest.raises(dagnats.ApiError):
        await client.start("robust-echo", 1, idempotency_key="order-1")
    assert failed
    run = await client.start("robust-echo", 2, idempotency_key="order-1")
    assert not run.duplicate
    assert await run.result(timeout=WAIT_S) == 2
    again = await client.start("robust-echo", 3, idempotency_key="order-1")
    assert again.duplicate and again.run_id == run.run_id


async def test_stale_idempotency_key_is_replaced(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_mod, "IDEMPOTENCY_GRACE_S", 0.3)
    client = dagnats_env.client
    await client.register(_echo_flow(dagnats_env))
    digest = hashlib.sha256(b"order-2").hexdigest()[:40]
    kv = await dagnats_env.nc.jetstream().key_value(protocol.KV_IDEMPOTENCY)
    await kv.put(f"robust-echo.{digest}", b"run-that-never-started")
    run = await client.start("robust-echo", 5, idempotency_key="order-2")
    assert not run.duplicate and run.run_id != "run-that-never-started"
    assert await run.result(timeout=WAIT_S) == 5
    again = await client.start("robust-echo", 6, idempotency_key="order-2")
    assert again.duplicate and again.run_id == run.run_id
    monkeypatch.setattr(ops_mod, "IDEMPOTENCY_GRACE_S", 30.0)  # no waiting from here on
    await client.delete_run(run.run_id)  # releases the key: a new start is a new run
    fresh = await asyncio.wait_for(client.start("robust-echo", 7, idempotency_key="order-2"), 5)
    assert not fresh.duplicate and fresh.run_id != run.run_id
    assert await fresh.result(timeout=WAIT_S) == 7


# --- 3. force delete -----------------------------------------------------------------------


def _slow_flow(env: DagnatsEnv, started: asyncio.Event) -> dagnats.Workflow:
    worker = dagnats.Worker()

    @worker.task()
    async def slow(ctx: dagnats.TaskContext, value: Any) -> Any:
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return value

    env.add_worker(worker)
    wf = dagnats.Workflow("robust-slow")
    wf.step("slow")
    return wf


async def test_force_delete_cancels_a_running_run_then_deletes_it(
    dagnats_env: DagnatsEnv,
) -> None:
    started = asyncio.Event()
    client = dagnats_env.client
    run = await client.start(_slow_flow(dagnats_env, started))
    await asyncio.wait_for(started.wait(), WAIT_S)
    with pytest.raises(dagnats.ApiError) as info:
        await client.delete_run(run.run_id)
    assert info.value.code == 409
    await client.delete_run(run.run_id, force=True)
    with pytest.raises(dagnats.RunNotFoundError):
        await client.get_run(run.run_id)
    assert [e async for e in run.events()] == []
    await asyncio.sleep(0.5)  # nothing writes the run back
    kv = await client.kv(protocol.KV_RUNS)
    assert [k for k in await list_keys(kv) if k == run.run_id] == []


async def test_force_delete_without_an_engine_refuses_and_keeps_the_run(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_mod, "FORCE_DELETE_WAIT_S", 0.5)
    started = asyncio.Event()
    client = dagnats_env.client
    run = await client.start(_slow_flow(dagnats_env, started))
    await asyncio.wait_for(started.wait(), WAIT_S)
    await dagnats_env.stop_engine()
    with pytest.raises(dagnats.ApiError, match="did not end") as info:
        await client.delete_run(run.run_id, force=True)
    assert info.value.code == 409
    assert (await client.get_run(run.run_id)).run_id == run.run_id
    await dagnats_env.start_engine()  # the cancel request is in the log: the run ends
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=WAIT_S)
    await client.delete_run(run.run_id)
    with pytest.raises(dagnats.RunNotFoundError):
        await client.get_run(run.run_id)


# --- 4. replies over the message limit -----------------------------------------------------


async def test_state_larger_than_a_message_is_readable_and_deleted_with_the_run(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker(concurrency=64)

    @worker.task()
    async def items(ctx: dagnats.TaskContext, n: int) -> list[int]:
        return list(range(n))

    @worker.task()
    async def pad(ctx: dagnats.TaskContext, i: int) -> str:
        return f"{i:06d}" + "x" * 494  # 500 bytes each: 3000 of them are ~1.5 MB of state

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("robust-big-state")
    src = wf.step("items")
    wf.map("pad", depends_on=[src], max_items=3000)
    client = dagnats_env.client
    run = await client.start(wf, 3000)
    out = await run.result(timeout=90)
    assert len(out) == 3000 and out[2999].startswith("002999")
    state = await run.status()
    assert state.status == "completed"
    assert len(json.dumps(state.model_dump(mode="json"))) > 1024 * 1024
    raw = await dagnats_env.nc.request(
        "dagnats.api.run.get", json.dumps({"run_id": run.run_id}).encode(), timeout=WAIT_S
    )
    ref = json.loads(raw.data)  # the reply itself is a reference the client resolved
    assert set(ref) == {"$dagnats_ref", "size"} and ref["size"] > 900 * 1024
    obj = await dagnats_env.nc.jetstream().object_store(protocol.OBJ_PAYLOADS)
    assert (await obj.get(f"snapshots/{run.run_id}")).data  # too big for the runs bucket
    await client.delete_run(run.run_id)
    with pytest.raises(dagnats.RunNotFoundError):
        await client.get_run(run.run_id)
    with pytest.raises(Exception) as gone:
        await obj.get(f"snapshots/{run.run_id}")
    assert isinstance(gone.value, ObjectNotFoundError) or "deleted" in repr(gone.value).lower()


# --- 5. bounded request tasks --------------------------------------------------------------


async def test_api_refuses_requests_past_the_in_flight_limit(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dagnats_env.api is not None
    monkeypatch.setattr(api_mod, "MAX_INFLIGHT_REQUESTS", 2)
    stuck: list[asyncio.Task[Any]] = [asyncio.create_task(asyncio.Event().wait()) for _ in range(2)]
    dagnats_env.api._tasks.update(stuck)  # two requests still being served
    try:
        with pytest.raises(dagnats.ApiError, match=r"API busy \(2 requests in flight\)") as info:
            await dagnats_env.client.list_workflows()
        assert info.value.code == 503
    finally:
        for t in stuck:
            t.cancel()
            dagnats_env.api._tasks.discard(t)
    assert await dagnats_env.client.list_workflows() == []


# --- 6. starting a Workflow object runs the revision it registered -------------------------


async def test_start_of_a_workflow_object_runs_its_own_revision(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def first(ctx: dagnats.TaskContext, value: Any) -> str:
        return "first"

    @worker.task()
    async def second(ctx: dagnats.TaskContext, value: Any) -> str:
        return "second"

    dagnats_env.add_worker(worker)
    v1 = dagnats.Workflow("robust-versions")
    v1.step("first")
    client = dagnats_env.client
    run1 = await client.start(v1)
    assert await run1.result(timeout=WAIT_S) == "first"
    rev1 = (await run1.status()).revision

    v2 = dagnats.Workflow("robust-versions", version="2.0")
    v2.step("second")
    other = Client(dagnats_env.nc)
    rev2 = (await other.register(v2)).revision
    assert rev2 != rev1

    run2 = await client.start(v1)  # this client's v1: not whatever is latest now
    assert await run2.result(timeout=WAIT_S) == "first"
    assert (await run2.status()).revision == rev1
    latest = await client.start("robust-versions")  # by name: the latest
    assert await latest.result(timeout=WAIT_S) == "second"


# --- 7, 8. handles on unknown or finished runs ---------------------------------------------


async def test_follow_events_of_an_unknown_run_raises(dagnats_env: DagnatsEnv) -> None:
    run = dagnats_env.client.run("no-such-run")

    async def follow() -> None:
        async for _ in run.events(follow=True):
            pass

    with pytest.raises(dagnats.RunNotFoundError):
        await asyncio.wait_for(follow(), 5)


async def test_stream_of_a_finished_step_or_unknown_run_returns(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handle_mod, "STREAM_START_GRACE_S", 0.5)
    client = dagnats_env.client
    run = await client.start(_echo_flow(dagnats_env, "robust-stream"), 7)
    assert await run.result(timeout=WAIT_S) == 7

    async def read(handle: dagnats.RunHandle) -> list[Any]:
        return [chunk async for chunk in handle.stream("echo")]

    assert await asyncio.wait_for(read(client.run(run.run_id)), 5) == []
    with pytest.raises(dagnats.RunNotFoundError):
        await asyncio.wait_for(read(client.run("no-such-run")), 5)


# --- 9. a lost terminal announcement -------------------------------------------------------


async def test_result_reads_the_snapshot_again_when_the_announcement_is_lost(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def nap(ctx: dagnats.TaskContext, value: Any) -> Any:
        await asyncio.sleep(1.0)
        return value

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("robust-lost-announcement")
    wf.step("nap")
    run = await dagnats_env.client.start(wf, 9)
    # This handle listens where nothing is announced: as if the announcement was lost.
    deaf = types.SimpleNamespace(**vars(protocol))
    deaf.done_subject = lambda run_id: f"nowhere.{run_id}"
    monkeypatch.setattr(handle_mod, "protocol", deaf)
    monkeypatch.setattr(handle_mod, "RESULT_RECHECK_S", 0.5)
    assert await asyncio.wait_for(run.result(), WAIT_S) == 9
