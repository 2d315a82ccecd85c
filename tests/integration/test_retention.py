"""Methodology: a finished run with an offloaded (300 KB) output, and a run asleep for an
hour, on a real nats-server. One retention sweep
"a day later" (its clock is given) with a retention of one hour must remove the finished
run's history, snapshot and payload objects, and leave the waiting run whole; a second
sweep finds nothing. The engine started with ``retention_s`` runs the sweep itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagnats
from dagnats import protocol
from dagnats._nats.history import has_history
from dagnats._nats.kvscan import get_entry
from dagnats._nats.payloads import Payloads
from dagnats._nats.retention import objects_by_run
from dagnats.engine.retention import Retention
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import wait_state

WAIT_S = 20.0


async def test_a_sweep_removes_finished_runs_and_keeps_running_ones(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def big(ctx: dagnats.TaskContext) -> str:
        return "x" * 300_000

    dagnats_env.add_worker(worker)
    done_wf = dagnats.Workflow("kept-briefly")
    done_wf.step("a", task="big")
    waiting_wf = dagnats.Workflow("still-waiting")
    waiting_wf.sleep("nap", duration=3600)
    await dagnats_env.wait_workers_ready()
    done = await dagnats_env.client.start(done_wf)
    assert len(await done.result(timeout=WAIT_S)) == 300_000
    waiting = await dagnats_env.client.start(waiting_wf)
    await wait_state(dagnats_env, waiting.run_id, lambda s: s.status == "running")

    js = dagnats_env.nc.jetstream()
    payloads = Payloads(js)
    assert (await objects_by_run(payloads)).get(done.run_id)  # the output was offloaded
    retention = Retention(dagnats_env.nc, retention_s=3600)
    await retention.start()
    try:
        later = datetime.now(UTC) + timedelta(days=1)
        assert await retention.sweep(now=later) == 1
        assert await retention.sweep(now=later) == 0
    finally:
        await retention.stop()
    runs = await js.key_value(protocol.KV_RUNS)
    assert await get_entry(runs, done.run_id) is None
    assert not await has_history(js, done.run_id)
    assert done.run_id not in await objects_by_run(payloads)
    assert await has_history(js, waiting.run_id)
    assert (await dagnats_env.client.get_run(waiting.run_id)).status == "running"


async def test_a_workflow_s_own_retention_wins_over_the_global_one(
    dagnats_env: DagnatsEnv,
) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def noop(ctx: dagnats.TaskContext) -> int:
        return 1

    dagnats_env.add_worker(worker)
    flows = {
        "short": dagnats.Workflow("short", retention="1h"),
        "plain": dagnats.Workflow("plain"),
        "long": dagnats.Workflow("long", retention="400d"),
    }
    runs = {}
    for name, wf in flows.items():
        wf.step("a", task="noop")
        runs[name] = await dagnats_env.client.start(wf)
        assert await runs[name].result(timeout=WAIT_S) == 1
    js = dagnats_env.nc.jetstream()
    later = datetime.now(UTC) + timedelta(days=2)

    async def kept() -> set[str]:
        return {name for name, r in runs.items() if await has_history(js, r.run_id)}

    # No global retention: only the workflow that asks for one loses its run.
    keep_all = Retention(dagnats_env.nc, retention_s=None)
    await keep_all.start()
    try:
        assert await keep_all.sweep(now=later) == 1
    finally:
        await keep_all.stop()
    assert await kept() == {"plain", "long"}
    # A global day: the workflow's own 400 days still keep its run.
    one_day = Retention(dagnats_env.nc, retention_s=86_400)
    await one_day.start()
    try:
        assert await one_day.sweep(now=later) == 1
    finally:
        await one_day.stop()
    assert await kept() == {"long"}
    assert (await dagnats_env.client.get_run(runs["long"].run_id)).status == "completed"
