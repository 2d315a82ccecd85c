"""Methodology: real worker processes are SIGKILLed mid-task; the task must be redelivered to
another worker, and after max_deliver lost deliveries the engine must count a failed attempt
(max-deliveries advisory) and retry per the step's policy. Every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import dagnats
from dagnats import protocol
from dagnats.engine.advisories import ADVISORY
from dagnats.protocol.events import Event
from dagnats.testing import DagnatsEnv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def spawn_fragile(url: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "fragile_worker.py"),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )


async def kill_when_started(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)
    return line.decode().strip()


def good_worker() -> dagnats.Worker:
    worker = dagnats.Worker(ack_wait_s=1.0)

    @worker.task()
    async def fragile(ctx: dagnats.TaskContext, x: int) -> int:
        return x * 2

    return worker


def flow() -> dagnats.Workflow:
    wf = dagnats.Workflow("fragile-flow")
    wf.step("fragile", retry=dagnats.RetryPolicy(max_attempts=1, initial_delay="10ms"))
    return wf


async def test_killed_worker_task_is_redelivered_to_another() -> None:
    async with DagnatsEnv.start() as env:
        run = await env.client.start(flow(), 21)
        proc = await spawn_fragile(env.url)
        try:
            assert await kill_when_started(proc) == "started attempt=1"
        finally:
            if proc.returncode is None:
                proc.kill()
        env.add_worker(good_worker())
        assert await run.result(timeout=20) == 42
        state = await run.status()
        assert state.steps["fragile"].attempts == 1  # a redelivery, not a retry


async def test_worker_lost_max_deliver_times_counts_as_failed_attempt() -> None:
    async with DagnatsEnv.start() as env:
        lost = asyncio.Event()

        async def on_history(msg: object) -> None:
            event = Event.from_bytes(msg.data)  # type: ignore[attr-defined]
            if event.type == "step.worker_lost":
                lost.set()

        sub = await env.nc.subscribe(protocol.history_subject("*"), cb=on_history)
        run = await env.client.start(flow(), 5)
        for _ in range(3):  # the task consumer's max_deliver
            proc = await spawn_fragile(env.url)
            try:
                assert (await kill_when_started(proc)).startswith("started attempt=1")
            finally:
                if proc.returncode is None:
                    proc.kill()
        # The server notices the exhausted deliveries when it next tries to deliver, i.e.
        # when a worker pulls: it then emits the advisory instead of a fourth delivery.
        env.add_worker(good_worker())
        await asyncio.wait_for(lost.wait(), 20)
        await sub.unsubscribe()
        assert await run.result(timeout=20) == 10
        types = [e.type async for e in run.events()]
        assert "step.worker_lost" in types and "step.retrying" in types
        assert (await run.status()).steps["fragile"].attempts == 2


async def test_worker_lost_while_no_engine_runs_is_still_counted() -> None:
    async with DagnatsEnv.start() as env:
        run = await env.client.start(flow(), 7)
        proc = await spawn_fragile(env.url)
        try:
            assert (await kill_when_started(proc)).startswith("started attempt=1")
        finally:
            if proc.returncode is None:
                proc.kill()
        await env.stop_engine()  # the advisory will come while no engine listens
        for _ in range(2):
            proc = await spawn_fragile(env.url)
            try:
                assert (await kill_when_started(proc)).startswith("started attempt=1")
            finally:
                if proc.returncode is None:
                    proc.kill()
        advisory = await env.nc.subscribe(ADVISORY)
        env.add_worker(good_worker())  # its pull makes the server emit the advisory
        await advisory.next_msg(timeout=20)  # captured by the ADVISORIES stream too
        await advisory.unsubscribe()
        await env.start_engine()
        assert await run.result(timeout=20) == 14
        assert "step.worker_lost" in [e.type async for e in run.events()]
