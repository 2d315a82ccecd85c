"""Methodology: an engine killed with ``RUNS`` runs in flight (each with its one task
dispatched), the tasks all done while no engine runs, then the engine started again under
the same id: every run's completion waits in the history, with a snapshot behind it, so
each run's first event is a catch-up read. The restarted engine must end every run and
keep its partitions throughout (no "lost partition" warning): the 10,000-run benchmark
once lost them over and over while its catch-up reads swamped nats-server, then stopped
for good when a feed's drain timed out and nats-py stopped reading (test_connection_reads).
Bounded: ``RUNS`` runs, every wait with a timeout."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import dagnats
from dagnats.protocol import names
from dagnats.testing import DagnatsEnv
from dagnats.testing.engines import kill_engine, start_engine, stop_engine

RUNS = 5000
START_CONCURRENCY = 200
WAIT_S = 60.0
POLL_S = 0.1  # a stream's message count has no watch: polled


async def _task_stream_holds(env: DagnatsEnv, count: int) -> None:
    js = env.nc.jetstream()
    deadline = time.monotonic() + WAIT_S
    while (await js.stream_info(names.TASK_STREAM)).state.messages != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{names.TASK_STREAM} never held {count} tasks")
        await asyncio.sleep(POLL_S)


async def test_an_engine_restarted_on_a_backlog_ends_every_run_and_keeps_its_leases(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dagnats.engine.leases")
    async with DagnatsEnv.start(engine=False) as env:
        first = await start_engine(env.url, engine_id="backlog")
        wf = dagnats.Workflow("backlog")
        wf.step("once")
        await env.client.register(wf)
        sem = asyncio.Semaphore(START_CONCURRENCY)

        async def start(i: int) -> dagnats.RunHandle:
            async with sem:
                return await env.client.start("backlog", i)

        runs = await asyncio.gather(*(start(i) for i in range(RUNS)))
        await _task_stream_holds(env, RUNS)  # every run's task dispatched
        await kill_engine(first)
        worker = dagnats.Worker(concurrency=256)

        @worker.task()
        async def once(ctx: dagnats.TaskContext, n: int) -> int:
            return n + 1

        env.add_worker(worker)
        await env.wait_workers_ready()
        await _task_stream_holds(env, 0)  # every completion waits in the history
        second = await start_engine(env.url, engine_id="backlog")
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(r.result(timeout=WAIT_S) for r in runs)), WAIT_S
            )
            assert results == [i + 1 for i in range(RUNS)]
            lost = [r.getMessage() for r in caplog.records if "lost partition" in r.getMessage()]
            assert lost == []
        finally:
            await stop_engine(second)
