"""Methodology: "why is my run stuck" and the DAG pictures end to end on a real nats-server.

A run whose first task no worker serves is started; the CLI (typer's runner, in a thread so
its own event loop does not nest in the test's) must say which task nobody serves in
``run status`` (text and JSON), ``run start --watch`` and ``dagnats status`` (with queue
depths, engines, workers and the dead-letter count). Then a worker for that task arrives,
the run completes and the hint is gone; ``run graph --last`` draws the finished run.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from typer.testing import CliRunner, Result

import dagnats
from dagnats.cli.app import app
from dagnats.client.diagnosis import served_by
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import wait_state

runner = CliRunner()


async def cli(*args: str, timeout_s: float = 30.0) -> Result:
    return await asyncio.wait_for(asyncio.to_thread(runner.invoke, app, list(args)), timeout_s)


def _workflow() -> dagnats.Workflow:
    wf = dagnats.Workflow("stuck-flow")
    g = wf.step("greet")
    wf.step("shout", depends_on=[g], worker_group="gpu")
    return wf


async def test_a_run_nobody_serves_says_so_until_a_worker_comes(dagnats_env: DagnatsEnv) -> None:
    url = dagnats_env.url
    run = await dagnats_env.client.start(_workflow(), "Ada")
    await wait_state(dagnats_env, run.run_id, lambda s: s.steps.get("greet") is not None)

    res = await cli("run", "status", run.run_id, "--nats-url", url)
    assert res.exit_code == 0, res.output
    assert "Stuck: step 'greet' is queued: no worker serves task 'greet'" in res.output

    res = await cli("run", "status", run.run_id, "--nats-url", url, "--json")
    doc = json.loads(res.output)
    assert doc["stuck"] == [
        {
            "step_id": "greet",
            "task": "greet",
            "group": None,
            "message": "step 'greet' is queued: no worker serves task 'greet'",
        }
    ]

    res = await cli("status", "--nats-url", url)
    assert res.exit_code == 0, res.output
    assert "Queues:     task.greet 1" in res.output
    assert "Dead letters: 0" in res.output
    assert "Stuck:      1 task message(s) on task.greet: no worker serves task 'greet'" in (
        res.output
    )
    engine = dagnats_env.engine
    assert engine is not None
    assert "Engines:    1\n" in res.output
    assert f"  {engine.engine_id} (pid {os.getpid()}" in res.output
    assert "partitions 0,1,2,3,4,5,6,7" in res.output
    assert "Partitions: 8, 0 events pending" in res.output
    res = await cli("status", "--nats-url", url, "--json")
    doc = json.loads(res.output)
    assert [e["engine_id"] for e in doc["engines"]] == [engine.engine_id]
    assert doc["engines"][0]["partitions"] == list(range(8))
    assert [p["holder"] for p in doc["partitions"]] == [engine.engine_id] * 8
    assert doc["queues"] == [
        {"subject": "task.greet", "task": "greet", "group": None, "messages": 1}
    ]
    assert doc["dead_letters"] == 0 and doc["workers"] == []

    worker = dagnats.Worker(groups=["gpu"])

    @worker.task()
    async def greet(ctx: dagnats.TaskContext, name: str) -> str:
        return f"Hello, {name}!"

    @worker.task()
    async def shout(ctx: dagnats.TaskContext, text: str) -> str:
        return text.upper()

    dagnats_env.add_worker(worker)
    assert await run.result(timeout=15) == "HELLO, ADA!"
    res = await cli("run", "status", run.run_id, "--nats-url", url)
    assert "Stuck" not in res.output

    res = await cli("run", "graph", "--last", "--nats-url", url, "--format", "mermaid")
    assert res.exit_code == 0, res.output
    assert '    s0["greet: completed"]' in res.output
    assert "    class s0,s1 completed" in res.output
    res = await cli("run", "graph", "--last", "--nats-url", url)
    assert "● [ shout: completed ]  <- greet" in res.output
    res = await cli("workflow", "graph", "stuck-flow", "--nats-url", url, "-f", "mermaid")
    assert res.output.startswith("flowchart TD\n") and "s0 --> s1" in res.output


async def test_watch_names_the_task_nobody_serves(dagnats_env: DagnatsEnv) -> None:
    await dagnats_env.client.register(_workflow())

    async def serve_later() -> None:
        # The watch must first say what it waits for, then finish once a worker comes.
        await asyncio.sleep(3.5)
        worker = dagnats.Worker(groups=["gpu"])

        @worker.task()
        async def greet(ctx: dagnats.TaskContext, name: str) -> str:
            return name

        @worker.task()
        async def shout(ctx: dagnats.TaskContext, text: str) -> str:
            return text.upper()

        dagnats_env.add_worker(worker)

    later = asyncio.create_task(serve_later())
    res = await cli("run", "start", "stuck-flow", '"bo"', "--watch", "--nats-url", dagnats_env.url)
    await later
    assert res.exit_code == 0, res.output
    assert "Waiting: step 'greet' is queued: no worker serves task 'greet'" in res.output
    assert res.output.count("Waiting:") == 1  # said once, not every check
    assert 'Output: "BO"' in res.output


def test_served_by_reads_exact_pairs_and_old_entries() -> None:
    entries: list[dict[str, Any]] = [
        {"tasks": ["a"], "groups": ["gpu"], "serves": [["a", "gpu"]]},
        {"tasks": ["b"], "groups": ["x"]},
    ]
    assert served_by(entries) == {("a", "gpu"), ("b", None), ("b", "x")}
