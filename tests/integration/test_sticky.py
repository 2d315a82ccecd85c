"""Methodology: sticky runs with two real workers on one nats-server, through the public API.
Only worker "one" serves the first task, both serve the later ones, so without stickiness
about half the later steps would run on "two": with sticky every later step of every run
runs on "one" (soft and hard). Then "one" is stopped after the first step: a soft run falls
back to "two" after its short wait; a hard run waits for "one" and ends by its timeout."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, wait_state

Log = list[tuple[str, str, str]]  # (worker, run id, task)


def workers(log: Log, gate: asyncio.Event | None = None) -> tuple[dagnats.Worker, dagnats.Worker]:
    one, two = dagnats.Worker(name="one"), dagnats.Worker(name="two")

    @one.task()
    async def first(ctx: dagnats.TaskContext, inp: Any) -> int:
        log.append(("one", ctx.run_id, "first"))
        if gate is not None:
            await asyncio.wait_for(gate.wait(), WAIT_S)
        return 1

    for name, w in (("one", one), ("two", two)):

        def make(worker_name: str, task: str) -> Any:
            async def handler(ctx: dagnats.TaskContext, n: int) -> int:
                log.append((worker_name, ctx.run_id, task))
                return n + 1

            handler.__name__ = task
            return handler

        w.task("later")(make(name, "later"))
        w.task("last")(make(name, "last"))
    return one, two


def sticky_wf(
    name: str, mode: Literal["soft", "hard", ""], timeout: str = "1m"
) -> dagnats.Workflow:
    wf = dagnats.Workflow(name, sticky=mode, timeout=timeout)
    f = wf.step("first")
    a = wf.step("later", depends_on=[f])
    wf.step("last", depends_on=[a])
    return wf


@pytest.mark.parametrize("mode", ["soft", "hard", ""])
async def test_every_step_of_a_run_goes_to_its_worker(
    dagnats_env: DagnatsEnv, mode: Literal["soft", "hard", ""]
) -> None:
    log: Log = []
    one, two = workers(log)
    dagnats_env.add_worker(one)
    dagnats_env.add_worker(two)
    await dagnats_env.wait_workers_ready()
    wf = sticky_wf(f"sticky-{mode or 'none'}", mode)
    runs = [await dagnats_env.client.start(wf, None) for _ in range(8)]
    for run in runs:
        assert await run.result(timeout=WAIT_S) == 3
    assert len(log) == 3 * len(runs)
    if mode:
        assert {w for w, _, _ in log} == {"one"}, log
    else:  # the control: without sticky, "two" takes some of the 16 later steps
        assert {w for w, _, _ in log} == {"one", "two"}, log


async def test_soft_falls_back_and_hard_waits(dagnats_env: DagnatsEnv) -> None:
    log: Log = []
    gate = asyncio.Event()
    one, two = workers(log, gate)
    dagnats_env.add_worker(one)
    dagnats_env.add_worker(two)
    await dagnats_env.wait_workers_ready()
    soft = await dagnats_env.client.start(sticky_wf("soft-gone", "soft"), None)
    hard = await dagnats_env.client.start(sticky_wf("hard-gone", "hard", timeout="5s"), None)
    for run in (soft, hard):
        await wait_state(dagnats_env, run.run_id, lambda s: s.steps["first"].status == "running")
    # Worker "one" drains: it finishes both first steps, then takes nothing more.
    draining = DrainSeen()
    pool_log = logging.getLogger("dagnats.worker.pool")
    level = pool_log.level
    pool_log.setLevel(logging.INFO)
    pool_log.addHandler(draining)
    try:
        stopping = asyncio.create_task(dagnats_env.stop_worker(one))
        await asyncio.wait_for(draining.seen.wait(), WAIT_S)
        gate.set()
        await asyncio.wait_for(stopping, WAIT_S)
    finally:
        pool_log.removeHandler(draining)
        pool_log.setLevel(level)
    assert await soft.result(timeout=WAIT_S) == 3
    assert [(w, t) for w, r, t in log if r == soft.run_id] == [
        ("one", "first"),
        ("two", "later"),
        ("two", "last"),
    ]
    with pytest.raises(dagnats.RunFailedError, match="timed out"):
        await hard.result(timeout=WAIT_S)
    assert [(w, t) for w, r, t in log if r == hard.run_id] == [("one", "first")]
    assert (await hard.status()).steps["later"].status != "completed"


class DrainSeen(logging.Handler):
    """Sets ``seen`` when a worker logs that it is draining (it has stopped pulling)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "draining" in record.getMessage():
            self.seen.set()


async def test_a_sticky_map_runs_on_the_run_s_worker(dagnats_env: DagnatsEnv) -> None:
    log: Log = []
    one, two = workers(log)

    @one.task()
    async def spread(ctx: dagnats.TaskContext, n: int) -> list[int]:
        log.append(("one", ctx.run_id, "spread"))
        return list(range(6))

    dagnats_env.add_worker(one)
    dagnats_env.add_worker(two)
    await dagnats_env.wait_workers_ready()

    wf = dagnats.Workflow("sticky-map", sticky="soft", timeout="1m")
    f = wf.step("first")
    s = wf.step("spread", depends_on=[f])
    wf.map("each", task="later", depends_on=[s])
    run = await dagnats_env.client.start(wf, None)
    assert await run.result(timeout=WAIT_S) == [1, 2, 3, 4, 5, 6]
    assert {w for w, _, _ in log} == {"one"}, log
