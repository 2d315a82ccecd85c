"""The chaos suite's worker: ``dagnats worker tests.chaos.chaos_worker:worker``.

Each handler call appends one line (run, step, attempt, pid) to the ledger file named by
``DAGNATS_CHAOS_LEDGER`` before it returns, so the suite counts handler executions across
SIGKILLs: one ``write`` of a short line to a file opened with ``O_APPEND`` is atomic, and a
killed process loses at most the line of a call that had not finished.
"""

from __future__ import annotations

import asyncio
import os

import dagnats

LEDGER_ENV = "DAGNATS_CHAOS_LEDGER"
STEP_DELAY_S = 0.02  # a handler takes a little time, so kills land mid-task too


def record(ctx: dagnats.TaskContext) -> None:
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    line = f"{ctx.run_id} {ctx.step_id} {ctx.attempt} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def make_worker(*, ack_wait_s: float = 2.0, replicas: int | None = None) -> dagnats.Worker:
    """The worker: ``inc`` adds one (a short ack wait, so a killed worker's tasks come back
    within seconds instead of the default's half minute)."""
    w = dagnats.Worker(name="chaos", concurrency=16, ack_wait_s=ack_wait_s, replicas=replicas)

    @w.task()
    async def inc(ctx: dagnats.TaskContext, x: int) -> int:
        await asyncio.sleep(STEP_DELAY_S)
        record(ctx)
        return x + 1

    return w


worker = make_worker()
cluster_worker = make_worker(replicas=3)
