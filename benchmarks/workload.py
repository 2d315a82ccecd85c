"""The benchmark worker and workflows (imported by the worker subprocess and the driver)."""

from __future__ import annotations

import dagnats

worker = dagnats.Worker(concurrency=256, name="bench-worker")


@worker.task()
async def bench_step(ctx: dagnats.TaskContext, value: int) -> int:
    return value + 1


@worker.task()
async def bench_items(ctx: dagnats.TaskContext, count: int) -> list[int]:
    """The list a map step fans out over."""
    return list(range(count))


def linear(name: str, steps: int) -> dagnats.Workflow:
    wf = dagnats.Workflow(name)
    prev = None
    for i in range(steps):
        prev = wf.step(f"s{i}", task="bench_step", depends_on=[prev] if prev else [])
    return wf


def fan_out(name: str, items: int) -> dagnats.Workflow:
    """``items`` (the run input) → one ``bench_step`` per item: a map of ``items``."""
    wf = dagnats.Workflow(name)
    gen = wf.step("items", task="bench_items")
    wf.map("each", task="bench_step", depends_on=[gen], max_items=items)
    return wf


def nap(name: str, seconds: float) -> dagnats.Workflow:
    """One durable sleep: the run is held by the engine, no worker involved."""
    wf = dagnats.Workflow(name)
    wf.sleep("nap", duration=seconds)
    return wf
