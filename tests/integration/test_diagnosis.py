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
from dagnats.client.diagnosis import diagnose_run, served_by, unserved_steps
from dagnats.dag.machine.state import RunState
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
            "routed_to": [],
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


def _agent_workflow() -> dagnats.Workflow:
    wf = dagnats.Workflow("routed-think")
    wf.agent("think", role="coder")
    return wf


def _thinker(gate: asyncio.Event, **options: Any) -> dagnats.Worker:
    worker = dagnats.Worker(**options)

    @worker.task()
    async def think(ctx: dagnats.TaskContext, data: Any) -> str:
        await asyncio.wait_for(gate.wait(), 30)
        return "done"

    return worker


async def test_an_agent_step_served_in_its_routed_group_is_no_alarm(
    dagnats_env: DagnatsEnv,
) -> None:
    # The engine sends coder agents to group gpu; the only worker serves think in gpu, one
    # task at a time: the second run's step waits queued for a busy worker, not for nobody.
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine(agent_routes={"coder": "gpu"})
    gate = asyncio.Event()
    worker = dagnats_env.add_worker(
        _thinker(gate, groups=["gpu"], serve_ungrouped=False, concurrency=1)
    )
    await asyncio.wait_for(worker.ready.wait(), 15)
    first = await dagnats_env.client.start(_agent_workflow(), None)
    await wait_state(dagnats_env, first.run_id, lambda s: s.steps["think"].status == "running")
    second = await dagnats_env.client.start("routed-think", None)
    state = await wait_state(dagnats_env, second.run_id, lambda s: s.steps.get("think") is not None)
    assert state.steps["think"].status == "queued"
    found = await dagnats_env.client.get_workflow("routed-think")
    assert await diagnose_run(dagnats_env.client.js, found["definition"], state) == []
    res = await cli("run", "status", second.run_id, "--nats-url", dagnats_env.url)
    assert res.exit_code == 0, res.output
    assert "Stuck" not in res.output
    gate.set()
    assert await second.result(timeout=15) == "done"


async def test_an_agent_step_names_the_group_its_route_waits_for(
    dagnats_env: DagnatsEnv,
) -> None:
    # Only an ungrouped worker serves think: the routed task on task.think.gpu waits.
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine(agent_routes={"coder": "gpu"})
    gate = asyncio.Event()
    gate.set()
    worker = dagnats_env.add_worker(_thinker(gate))
    await asyncio.wait_for(worker.ready.wait(), 15)
    run = await dagnats_env.client.start(_agent_workflow(), None)
    await wait_state(dagnats_env, run.run_id, lambda s: s.steps.get("think") is not None)
    res = await cli("run", "status", run.run_id, "--nats-url", dagnats_env.url)
    assert res.exit_code == 0, res.output
    assert (
        "Stuck: step 'think' is queued: no worker serves task 'think' in worker group 'gpu'"
        in res.output
    )
    dagnats_env.add_worker(_thinker(gate, groups=["gpu"], serve_ungrouped=False))
    assert await run.result(timeout=15) == "done"


def test_engines_that_route_an_agent_step_apart_are_named() -> None:
    wf = _agent_workflow()
    defn = wf.to_definition()
    run = RunState.model_validate(
        {
            "run_id": "r1",
            "workflow": "routed-think",
            "status": "running",
            "steps": {"think": {"status": "queued"}},
        }
    )
    served = frozenset({("think", "gpu")})
    assert unserved_steps(defn, run, served, [{"coder": "gpu"}]) == []
    [u] = unserved_steps(defn, run, served, [{"coder": "gpu"}, {}])
    assert u.group is None and u.routed_to == ("gpu", None)
    assert u.message == (
        "step 'think' is queued: engines disagree on the agent routes of task 'think' "
        "('gpu', ungrouped); no worker serves it ungrouped"
    )
    # Both routes served: no alarm, whichever engine dispatched it.
    both = served | {("think", None)}
    assert unserved_steps(defn, run, both, [{"coder": "gpu"}, {}]) == []
