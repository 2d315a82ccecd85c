"""The raw-NATS floor for one workflow step, with the same client library and feed.

One step at best: publish a task to a work-queue stream, a worker pulls it, publishes a
completion to a second stream and acks, and an engine-side consumer receives the completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

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


async def measure_floor(
    worker_nc: NatsClient, engine_nc: NatsClient, *, samples: int, concurrent: int
) -> dict[str, float]:
    tasks, done = await _setup(engine_nc)
    # The worker side reads through its own connection, as a worker process would.
    wtasks = PullFeed(worker_nc, "FLOOR_TASKS", "c", max_inflight=256)
    await tasks.stop()
    await wtasks.start()
    wtask = asyncio.create_task(_worker(worker_nc, wtasks))
    js = engine_nc.jetstream()
    lat: list[float] = []
    try:
        for i in range(samples):
            t0 = time.perf_counter()
            await js.publish("floor.task", str(i).encode())
            m = await done.get()
            await m.ack()
            await done.done()
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        futs = [await js.publish_async("floor.task", b"x") for _ in range(concurrent)]
        await asyncio.gather(*futs)
        for _ in range(concurrent):
            m = await done.get()
            await m.ack()
            await done.done()
        rate = concurrent / (time.perf_counter() - t0)
    finally:
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
    }
