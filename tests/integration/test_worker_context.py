"""Methodology: real Worker + nats-server; ctx checkpoints/signals/streams checked via NATS."""

from __future__ import annotations

import asyncio
import json

import anyio.from_thread
from pydantic import BaseModel

from dagnats import TaskContext, Worker, protocol
from dagnats._nats.checkpoints import load_checkpoint
from dagnats._nats.signals import send_signal
from dagnats._nats.types import KeyNotFoundError, Msg, NatsClient
from dagnats.server import EmbeddedNats
from tests.integration.worker_harness import WAIT_S, history, publish_task, running, task_message


class Progress(BaseModel):
    done: int


def make_worker(url: str) -> Worker:
    worker = Worker(url, name="w-ctx")

    @worker.task()
    async def resumable(ctx: TaskContext) -> int:
        cp = await ctx.load_checkpoint(Progress)
        if cp is None:
            await ctx.checkpoint(Progress(done=3))
            raise RuntimeError("crashed after 3 items")
        return cp.done

    @worker.task()
    async def approve(ctx: TaskContext, timeout_s: float) -> object:
        return await ctx.wait_for_signal("approval", timeout=timeout_s)

    @worker.task()
    async def notify(ctx: TaskContext, target: str) -> None:
        await ctx.send_signal(target, "approval", {"from": ctx.run_id})

    @worker.task()
    def sync_resumable(ctx: TaskContext) -> int:
        # Sync handlers reach the async context through anyio's bridge to the loop.
        cp = anyio.from_thread.run(ctx.load_checkpoint)
        if cp is None:
            anyio.from_thread.run(ctx.checkpoint, 7)
            anyio.from_thread.run(ctx.heartbeat)
            raise RuntimeError("crashed")
        return int(cp)

    @worker.task()
    async def chatty(ctx: TaskContext, n: int) -> int:
        for i in range(n):
            await ctx.put_stream({"token": i})
        return n

    return worker


async def test_checkpoint_survives_to_the_next_attempt(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    first = task_message("resumable")
    async with running(worker), history(nc, first.run_id) as h:
        await publish_task(nc, first)
        failed = await h.next("step.failed")
        assert failed.data["retryable"] is True
        assert failed.data["checkpointed"] is True  # so the run's end purges checkpoints
        # The engine retries: attempt 2 is a new message of the same step.
        await publish_task(nc, task_message("resumable", run_id=first.run_id, attempt=2))
        ev = await h.next("step.completed")
    assert (ev.attempt, ev.data) == (2, {"output": 3, "checkpointed": True})
    stored = await load_checkpoint(nc.jetstream(), first.run_id, "s")
    assert stored == {"done": 3}


async def test_sync_handler_uses_the_context_from_its_thread(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    first = task_message("sync_resumable")
    async with running(worker), history(nc, first.run_id) as h:
        await publish_task(nc, first)
        assert (await h.next("step.failed")).data["error"] == "crashed"
        await publish_task(nc, task_message("sync_resumable", run_id=first.run_id, attempt=2))
        ev = await h.next("step.completed", "step.failed")
    assert ev.data == {"output": 7, "checkpointed": True}


async def test_signal_sent_before_the_wait_is_returned(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    tm = task_message("approve", 5)
    await send_signal(nc.jetstream(), tm.run_id, "approval", {"ok": True})
    async with running(worker), history(nc, tm.run_id) as h:
        await publish_task(nc, tm)
        ev = await h.next("step.completed", "step.failed")
    assert ev.data == {"output": {"ok": True}}


async def test_signal_sent_by_another_step_during_the_wait(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    waiting = task_message("approve", 5)
    async with running(worker), history(nc) as h:
        await publish_task(nc, waiting)
        await h.next("step.started")
        await asyncio.sleep(0.2)  # the watch is in place
        # Another step sends it with ctx.send_signal.
        sender = task_message("notify", waiting.run_id)
        await publish_task(nc, sender)
        results = {e.run_id: e for e in await h.results(2)}
    assert results[sender.run_id].data == {"output": None}
    assert results[waiting.run_id].data == {"output": {"from": sender.run_id}}


async def test_wait_for_signal_times_out(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    async with running(worker), history(nc) as h:
        await publish_task(nc, task_message("approve", 0.3))
        ev = await h.next("step.failed", "step.completed")
    assert ev.data["error_type"] == "TimeoutError"
    assert "signal 'approval'" in ev.data["error"] and "300ms" in ev.data["error"]


async def test_put_stream_delivers_chunks_in_order(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    tm = task_message("chatty", 20)
    chunks: list[dict[str, object]] = []
    got_all = asyncio.Event()

    async def on_chunk(msg: Msg) -> None:
        chunks.append(json.loads(msg.data))
        if len(chunks) == 20:
            got_all.set()

    sub = await nc.subscribe(protocol.stream_subject(tm.run_id, tm.step_id), cb=on_chunk)
    async with running(worker), history(nc, tm.run_id) as h:
        await publish_task(nc, tm)
        await h.next("step.completed")
        await asyncio.wait_for(got_all.wait(), WAIT_S)
    await sub.unsubscribe()
    assert chunks == [{"seq": i + 1, "data": {"token": i}} for i in range(20)]


async def test_worker_directory_entry(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    kv = await nc.jetstream().key_value(protocol.KV_WORKERS)
    async with running(worker):
        entry = json.loads((await kv.get(worker.id)).value or b"{}")
    assert entry["id"] == worker.id and entry["name"] == "w-ctx"
    assert entry["tasks"] == ["approve", "chatty", "notify", "resumable", "sync_resumable"]
    assert {"host", "pid", "concurrency", "inflight", "started_at", "groups"} <= entry.keys()
    try:
        gone = await kv.get(worker.id)
    except KeyNotFoundError:
        gone = None
    assert gone is None  # deleted on stop
