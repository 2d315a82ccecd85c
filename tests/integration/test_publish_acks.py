"""Methodology: lost publish acks, for real. (1) A JetStream publish to a subject that a silent
core subscriber takes and no stream stores: its ack never comes, as when the server dies
after receiving a message; gather_acks must give up at its deadline and free nats-py's
pending-publish slots. (2) The engine's publishes are really sent, but the acks of the
first ones are thrown away (the future handed back never completes): every run must still
complete, through the retry with the same message ids. (3) The server is SIGKILLed and
started again twice while 40 three-step runs are in flight (publishes and their acks in
flight die with it): every run completes, none stuck. The chaos suite (tests/chaos) does
the same with serve, the worker and the server as separate processes, in loops.
Every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import dagnats
from dagnats._nats.publish import gather_acks
from dagnats._nats.types import NatsClient
from dagnats.testing import DagnatsEnv

RUNS = 40
WAIT_S = 60.0


async def test_a_lost_ack_times_out_and_frees_its_slot(nc: NatsClient) -> None:
    silent = await nc.subscribe("lost.>")  # takes the message, never answers
    js = nc.jetstream()
    futures = [await js.publish_async(f"lost.{i}", b"x") for i in range(3)]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="3 of 3 JetStream publish acks"):
        await gather_acks(futures, timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert js.publish_async_pending() == 0  # the slots are free again
    await silent.unsubscribe()


def _three_steps(env: DagnatsEnv) -> dagnats.Workflow:
    worker = dagnats.Worker()

    @worker.task()
    async def inc(ctx: dagnats.TaskContext, x: int) -> int:
        await asyncio.sleep(0.05)
        return x + 1

    env.add_worker(worker)
    wf = dagnats.Workflow("acks")
    a = wf.step("a", task="inc")
    b = wf.step("b", task="inc", depends_on=[a])
    wf.step("c", task="inc", depends_on=[b])
    return wf


async def test_lost_acks_of_the_engine_stick_no_run(
    dagnats_env: DagnatsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dagnats_env.engine is not None
    executor = dagnats_env.engine.parts.executor
    executor.ack_timeout_s = 0.5
    real = executor.js.publish_async
    lost: list[str] = []

    async def publish_async(subject: str, payload: bytes = b"", **kw: Any) -> Any:
        future = await real(subject, payload, **kw)  # really published
        if len(lost) < 10:
            lost.append(subject)
            return asyncio.get_running_loop().create_future()  # ...but its ack is lost
        return future

    monkeypatch.setattr(executor.js, "publish_async", publish_async)
    wf = _three_steps(dagnats_env)
    await dagnats_env.wait_workers_ready()
    runs = [await dagnats_env.client.start(wf, 0) for _ in range(5)]
    results = await asyncio.gather(*(r.result(timeout=WAIT_S) for r in runs))
    assert results == [3] * 5
    assert len(lost) == 10


async def test_no_run_sticks_when_the_server_is_killed_mid_publish(
    dagnats_env: DagnatsEnv,
) -> None:
    wf = _three_steps(dagnats_env)
    await dagnats_env.wait_workers_ready()
    runs = [await dagnats_env.client.start(wf, 0) for _ in range(RUNS)]
    for _ in range(2):
        await asyncio.sleep(0.2)  # runs in flight, publishes pending
        await dagnats_env.restart_server(kill=True)  # SIGKILL: acks in flight are lost
    results = await asyncio.gather(*(r.result(timeout=WAIT_S) for r in runs))
    assert results == [3] * RUNS
