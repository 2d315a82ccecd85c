"""Methodology: real Workers + nats-server; delivery read from handlers, history, consumers."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter

import pytest

from dagnats import DagnatsError, TaskContext, Worker, protocol
from dagnats._nats.types import AckPolicy, NatsClient
from dagnats.server import EmbeddedNats
from tests.integration.worker_harness import WAIT_S, history, publish_task, running, task_message


async def test_consumer_config_and_idempotent_update(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    def make(ack_wait_s: float) -> Worker:
        w = Worker(nats_server.url, ack_wait_s=ack_wait_s)

        @w.task()
        async def echo(ctx: TaskContext, x: int) -> int:
            return x

        return w

    js = nc.jetstream()
    async with running(make(30.0)):
        info = await js.consumer_info(protocol.TASK_STREAM, "task-echo")
    cfg = info.config
    assert cfg.filter_subject == "task.echo"
    assert cfg.ack_policy == AckPolicy.EXPLICIT
    assert (cfg.ack_wait, cfg.max_deliver, cfg.max_ack_pending) == (30.0, 3, 10_000)
    async with running(make(5.0)):  # same durable, new config: updated in place
        info = await js.consumer_info(protocol.TASK_STREAM, "task-echo")
    assert info.config.ack_wait == 5.0


async def test_heartbeats_prevent_redelivery_of_a_long_task(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = Worker(nats_server.url, ack_wait_s=1.0)
    calls: list[int] = []

    @worker.task()
    async def long(ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        await asyncio.sleep(2.5)  # 2.5 x ack_wait
        return "done"

    async with running(worker), history(nc) as h:
        await publish_task(nc, task_message("long"))
        ev = await h.next("step.completed")
    assert ev.data == {"output": "done"}
    assert calls == [1]
    info = await nc.jetstream().consumer_info(protocol.TASK_STREAM, "task-long")
    assert info.num_redelivered == 0 and info.num_ack_pending == 0


async def test_concurrency_bounds(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = Worker(nats_server.url, concurrency=3)
    now = Counter[str]()
    peak = Counter[str]()

    async def track(name: str) -> None:
        now[name] += 1
        now["all"] += 1
        peak[name] = max(peak[name], now[name])
        peak["all"] = max(peak["all"], now["all"])
        await asyncio.sleep(0.15)
        now[name] -= 1
        now["all"] -= 1

    @worker.task()
    async def wide(ctx: TaskContext) -> None:
        await track("wide")

    @worker.task(concurrency=1)
    async def narrow(ctx: TaskContext) -> None:
        await track("narrow")

    async with running(worker), history(nc) as h:
        for _ in range(8):
            await publish_task(nc, task_message("wide"))
            await publish_task(nc, task_message("narrow"))
        events = await h.results(16)
    assert all(e.type == "step.completed" for e in events)
    assert peak["all"] == 3  # the worker's bound, across tasks
    assert peak["narrow"] == 1  # the task's own bound
    assert worker.stats.completed == 16


async def test_two_workers_share_one_durable(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    handled: list[tuple[str, str]] = []

    def make(name: str) -> Worker:
        w = Worker(nats_server.url, name=name, concurrency=4)

        @w.task()
        async def job(ctx: TaskContext) -> str:
            handled.append((name, ctx.run_id))
            await asyncio.sleep(0.05)
            return name

        return w

    a, b = make("a"), make("b")
    async with running(a, b), history(nc) as h:
        runs = [task_message("job") for _ in range(40)]
        for tm in runs:
            await publish_task(nc, tm)
        events = await h.results(40)
    assert sorted(e.run_id for e in events) == sorted(tm.run_id for tm in runs)
    assert len(handled) == 40 and len({r for _, r in handled}) == 40  # each exactly once
    by = Counter(w for w, _ in handled)
    assert by["a"] > 0 and by["b"] > 0
    consumers = await nc.jetstream().consumers_info(protocol.TASK_STREAM)
    # One shared durable; besides it each worker has its own (sticky runs bound to it).
    assert [c.name for c in consumers if "@" not in c.name] == ["task-job"]


async def test_groups_route_to_their_workers(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    def make(name: str, groups: list[str], ungrouped: bool) -> Worker:
        w = Worker(nats_server.url, name=name, groups=groups, serve_ungrouped=ungrouped)

        @w.task()
        async def render(ctx: TaskContext) -> str:
            return name

        return w

    gpu = make("gpu", ["gpu"], False)
    plain = make("plain", [], True)
    both = make("both", ["arm"], True)
    async with running(gpu, plain, both), history(nc) as h:
        await publish_task(nc, task_message("render"), group="gpu")
        assert (await h.next("step.completed")).data == {"output": "gpu"}
        await publish_task(nc, task_message("render"), group="arm")
        assert (await h.next("step.completed")).data == {"output": "both"}
        outs = set()
        for _ in range(6):
            await publish_task(nc, task_message("render"))
            outs.add((await h.next("step.completed")).data["output"])
    assert outs <= {"plain", "both"}
    infos = await nc.jetstream().consumers_info(protocol.TASK_STREAM)
    names = {c.name for c in infos if "@" not in c.name}  # not the workers' own (sticky)
    assert names == {"task-render", "task-render-gpu", "task-render-arm"}


async def test_graceful_drain_gives_back_queued_and_finishes_running(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    entered = asyncio.Event()

    def make(name: str, slow: float) -> Worker:
        # Worker concurrency 1 but the task pulls up to 4: three wait for the slot.
        w = Worker(nats_server.url, name=name, concurrency=1, drain_timeout_s=5.0)

        @w.task(concurrency=4)
        async def job(ctx: TaskContext) -> str:
            entered.set()
            await asyncio.sleep(slow)
            return name

        return w

    a = make("a", 0.8)
    b = make("b", 0.0)
    runs = [task_message("job") for _ in range(4)]
    async with history(nc) as h:
        async with running(a):
            for tm in runs:
                await publish_task(nc, tm)
            await asyncio.wait_for(entered.wait(), WAIT_S)
            await asyncio.sleep(0.1)  # the other three are delivered and waiting
            t0 = time.monotonic()
            await asyncio.wait_for(a.stop(), WAIT_S)
            stop_s = time.monotonic() - t0
        assert (a.stats.completed, a.stats.returned) == (1, 3)
        assert stop_s < 2.0  # waited for the running handler only
        async with running(b):
            events = await h.results(4)
    outs = Counter(e.data["output"] for e in events)
    assert outs == {"a": 1, "b": 3}


async def test_drain_timeout_cancels_and_gives_back(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    entered = asyncio.Event()
    worker = Worker(nats_server.url, drain_timeout_s=0.3)

    @worker.task()
    async def stuck(ctx: TaskContext) -> str:
        entered.set()
        await asyncio.Event().wait()  # until cancelled
        return "never"

    async with running(worker):
        await publish_task(nc, task_message("stuck"))
        await asyncio.wait_for(entered.wait(), WAIT_S)
    assert worker.stats.returned == 1 and worker.stats.completed == 0
    info = await nc.jetstream().consumer_info(protocol.TASK_STREAM, "task-stuck")
    assert info.num_pending + info.num_ack_pending == 1  # back in the queue, not lost


async def test_cancelling_run_drains_first(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    entered = asyncio.Event()
    worker = Worker(nats_server.url)

    @worker.task()
    async def brief(ctx: TaskContext) -> str:
        entered.set()
        await asyncio.sleep(0.3)
        return "finished"

    async with history(nc) as h:
        run = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), WAIT_S)
        await publish_task(nc, task_message("brief"))
        await asyncio.wait_for(entered.wait(), WAIT_S)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, WAIT_S)
        ev = await h.next("step.completed")
    assert ev.data == {"output": "finished"} and worker.stats.completed == 1


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
async def test_sigterm_drains_a_second_one_forces(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    entered = asyncio.Event()
    worker = Worker(nats_server.url, drain_timeout_s=30.0)

    @worker.task()
    async def stuck(ctx: TaskContext) -> None:
        entered.set()
        await asyncio.Event().wait()  # until cancelled

    before = signal.getsignal(signal.SIGTERM)
    run = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), WAIT_S)
    await publish_task(nc, task_message("stuck"))
    await asyncio.wait_for(entered.wait(), WAIT_S)
    t0 = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)  # drain: would wait up to 30 s for the handler
    await asyncio.sleep(0.2)
    assert not run.done()
    os.kill(os.getpid(), signal.SIGTERM)  # again: cancel the handler, give its task back
    await asyncio.wait_for(run, WAIT_S)
    assert time.monotonic() - t0 < 5
    assert worker.stats.returned == 1
    assert signal.getsignal(signal.SIGTERM) == before


async def test_given_connection_is_used_and_left_open(nc: NatsClient) -> None:
    worker = Worker(connection=nc, name="shared-conn")

    @worker.task()
    async def ping(ctx: TaskContext) -> str:
        return "pong"

    async with worker, history(nc) as h:
        await publish_task(nc, task_message("ping"))
        assert (await h.next("step.completed")).data == {"output": "pong"}
    assert nc.is_connected
    # The same worker object can run again after a stop.
    async with running(worker), history(nc) as h:
        await publish_task(nc, task_message("ping"))
        assert (await h.next("step.completed")).data == {"output": "pong"}
    assert worker.stats.completed == 2


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
async def test_one_sigint_stops_every_worker_of_the_loop(nats_server: EmbeddedNats) -> None:
    def make(name: str) -> Worker:
        w = Worker(nats_server.url, name=name)

        @w.task()
        async def noop(ctx: TaskContext) -> None:
            return None

        return w

    before = signal.getsignal(signal.SIGINT)
    workers = [make("one"), make("two")]
    runs = [asyncio.create_task(w.run()) for w in workers]
    await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in workers)), WAIT_S)
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(asyncio.gather(*runs), WAIT_S)
    assert signal.getsignal(signal.SIGINT) == before


async def test_unreachable_nats_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dagnats.worker.startup.CONNECT_TIMEOUT_S", 0.5)
    worker = Worker("nats://127.0.0.1:1", name="lost")

    @worker.task()
    async def noop(ctx: TaskContext) -> None:
        return None

    with pytest.raises(DagnatsError, match=r"cannot connect to NATS at nats://127\.0\.0\.1:1"):
        await asyncio.wait_for(worker.run(), WAIT_S)
