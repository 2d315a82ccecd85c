"""The benchmark worker and workflows (imported by the worker subprocess and the driver)."""

from __future__ import annotations

import dagnats

worker = dagnats.Worker(concurrency=256, name="bench-worker")


@worker.task()
async def bench_step(ctx: dagnats.TaskContext, value: int) -> int:
    return value + 1


def linear(name: str, steps: int) -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    prev = None
    for i in range(steps):
        prev = wf.step(f"s{i}", task="bench_step", depends_on=[prev] if prev else [])
    return wf
