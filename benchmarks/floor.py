"""The raw-NATS floor for one workflow step, with the same client library and feed.

One step at best: publish a task to a work-queue stream, a worker pulls it, publishes a
completion to a second stream and acks, and an engine-side consumer receives the completion.
Both sides run in this one process; the CPU it and nats-server use per step is measured too
(the NATS operations every step costs a client, whatever it does besides).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import time
from collections.abc import Callable

from dagnats._nats.feed import PullFeed
from dagnats._nats.types import (
    AckPolicy,
    ConsumerConfig,
    Msg,
    NatsClient,
    RetentionPolicy,
    StreamConfig,
)


async def _setup(nc: NatsClient) -> tuple[PullFeed, PullFeed]:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name="FLOOR_TASKS", subjects=["floor.task"], retention=RetentionPolicy.WORK_QUEUE
        )
    )
    await js.add_stream(StreamConfig(name="FLOOR_DONE", subjects=["floor.done"]))
    for stream, subject in (("FLOOR_TASKS", "floor.task"), ("FLOOR_DONE", "floor.done")):
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name="c",
                filter_subject=subject,
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=10_000,
            ),
        )
    tasks = PullFeed(nc, "FLOOR_TASKS", "c", max_inflight=256)
    done = PullFeed(nc, "FLOOR_DONE", "c", max_inflight=1024)
    await tasks.start()
    await done.start()
    return tasks, done


async def _worker(nc: NatsClient, tasks: PullFeed) -> None:
    """Handle many tasks at once (bounded by the feed): the best a worker can do."""
    js = nc.jetstream()
    running: set[asyncio.Task[None]] = set()

    async def one(msg: Msg) -> None:
        await js.publish("floor.done", msg.data)  # completion stored before the ack
        await msg.ack()
        await tasks.done()

    while True:
        msg = await tasks.get()
        t = asyncio.create_task(one(msg))
        running.add(t)
        t.add_done_callback(running.discard)


def _cpu_s() -> float:
    """User plus system CPU this process (the floor's one client process) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure_floor(
    worker_nc: NatsClient,
    engine_nc: NatsClient,
    *,
    samples: int,
    concurrent: int,
    server_cpu_s: Callable[[], float] | None = None,
) -> dict[str, float]:
    """p50/p99 of one step at a time and steps/s of ``concurrent`` at once, with the CPU
    per step of this process (both sides of the floor) and of nats-server in each phase."""
    server = server_cpu_s or (lambda: 0.0)
    tasks, done = await _setup(engine_nc)
    # The worker side reads through its own connection, as a worker process would.
    wtasks = PullFeed(worker_nc, "FLOOR_TASKS", "c", max_inflight=256)
    await tasks.stop()
    await wtasks.start()
    wtask = asyncio.create_task(_worker(worker_nc, wtasks))
    js = engine_nc.jetstream()
    lat: list[float] = []
    gc.collect()  # the previous workload's garbage is not the floor's CPU
    gc.disable()
    try:
        cpu0, srv0 = _cpu_s(), server()
        for i in range(samples):
            t0 = time.perf_counter()
            await js.publish("floor.task", str(i).encode())
            m = await done.get()
            await m.ack()
            await done.done()
            lat.append(time.perf_counter() - t0)
        cpu1, srv1 = _cpu_s(), server()
        t0 = time.perf_counter()
        futs = [await js.publish_async("floor.task", b"x") for _ in range(concurrent)]
        await asyncio.gather(*futs)
        for _ in range(concurrent):
            m = await done.get()
            await m.ack()
            await done.done()
        rate = concurrent / (time.perf_counter() - t0)
        cpu2, srv2 = _cpu_s(), server()
    finally:
        gc.enable()
        wtask.cancel()
        with contextlib.suppress(BaseException):
            await wtask
        await wtasks.stop()
        await done.stop()
    lat.sort()
    return {
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1e3,
        "steps_per_s": rate,
        "client_cpu_us_one": (cpu1 - cpu0) / samples * 1e6,
        "server_cpu_us_one": (srv1 - srv0) / samples * 1e6,
        "client_cpu_us_many": (cpu2 - cpu1) / concurrent * 1e6,
        "server_cpu_us_many": (srv2 - srv1) / concurrent * 1e6,
    }
