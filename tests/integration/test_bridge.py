"""Methodology: the ``/v1`` worker bridge on a real nats-server with the engine running. The
"HTTP worker" here is plain httpx (what a worker in Go or TypeScript would send): it
connects, long-polls and resolves tasks next to a Python ``dagnats.Worker`` in the same
workflow; then failures with a type, checkpoints, streams and heartbeats, a worker that
vanishes (its lease lapses and its task is given back to the queue), and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import dagnats
from dagnats.errors import RunFailedError
from dagnats.server.bridge import SERVICE, Bridge, router
from dagnats.server.http import HttpGateway, Routes
from dagnats.testing import DagnatsEnv

TIMEOUT_S = 20.0


@pytest.fixture
async def http(dagnats_env: DagnatsEnv) -> AsyncIterator[httpx.AsyncClient]:
    bridge = Bridge(dagnats_env.nc)
    await bridge.start()
    gw = HttpGateway(dagnats_env.nc, port=0, routers=[Routes(router)], services={SERVICE: bridge})
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=TIMEOUT_S + 5) as client:
            yield client
    finally:
        await gw.stop()
        await bridge.stop()


async def _connect(http: httpx.AsyncClient, *tasks: str, lease_s: float = 30.0) -> str:
    body = {"name": "httpx-worker", "tasks": [{"task": t} for t in tasks], "lease_s": lease_s}
    resp = await http.post("/v1/workers", json=body)
    assert resp.status_code == 201, resp.text
    worker_id: str = resp.json()["worker_id"]
    return worker_id


async def _poll_one(http: httpx.AsyncClient, worker_id: str) -> dict[str, Any]:
    resp = await http.post(f"/v1/workers/{worker_id}/poll", json={"wait_s": TIMEOUT_S})
    assert resp.status_code == 200, resp.text
    tasks = resp.json()["tasks"]
    assert len(tasks) == 1, tasks
    task: dict[str, Any] = tasks[0]
    return task


async def test_an_httpx_worker_runs_a_step_next_to_a_python_worker(
    dagnats_env: DagnatsEnv, http: httpx.AsyncClient
) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, x: int) -> int:
        return x * 2

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("mixed")
    wf.step("increment", depends_on=[wf.step("double")])
    await dagnats_env.client.register(wf)
    worker_id = await _connect(http, "increment")

    async def httpx_worker() -> None:
        task = await _poll_one(http, worker_id)
        assert task["task"] == "increment" and task["attempt"] == 1 and task["delivery"] == 1
        resp = await http.post(f"/v1/tasks/{task['task_id']}/heartbeat")
        assert resp.json() == {"ok": True}
        resp = await http.post(
            f"/v1/tasks/{task['task_id']}/complete", json={"output": task["input"] + 1}
        )
        assert resp.json() == {"task_id": task["task_id"], "outcome": "completed"}

    served = asyncio.create_task(httpx_worker())
    run = await dagnats_env.client.start("mixed", 20)
    assert await run.result(timeout=TIMEOUT_S) == 41
    await asyncio.wait_for(served, TIMEOUT_S)
    history = [e async for e in run.events()]
    assert [e.type for e in history].count("step.completed") == 2
    started = [e for e in history if e.type == "step.started"]
    assert any((e.data or {}).get("worker_name") == "httpx-worker" for e in started)
    # Resolved once: a second answer for the same task is refused, not double-counted.
    resp = await http.post(f"/v1/tasks/{worker_id}-0/complete", json={"output": 0})
    assert resp.status_code == 404 and resp.json()["error"]["kind"] == "TaskNotHeld"
    resp = await http.delete(f"/v1/workers/{worker_id}")
    assert resp.json() == {"worker_id": worker_id, "returned": 0}


async def test_fail_with_a_type_checkpoint_stream_and_continue(
    dagnats_env: DagnatsEnv, http: httpx.AsyncClient
) -> None:
    wf = dagnats.Workflow("charge")
    wf.step("charge_card", retry={"max_attempts": 3, "initial_delay": "1ms"})
    await dagnats_env.client.register(wf)
    worker_id = await _connect(http, "charge_card")
    run = await dagnats_env.client.start("charge", {"cents": 100})

    first = await _poll_one(http, worker_id)
    tid = first["task_id"]
    assert (await http.get(f"/v1/tasks/{tid}/checkpoint")).json() == {"value": None}
    assert (
        await http.post(f"/v1/tasks/{tid}/checkpoint", json={"value": {"n": 1}})
    ).status_code == 200
    assert (await http.post(f"/v1/tasks/{tid}/stream", json={"data": "half"})).status_code == 200
    resp = await http.post(
        f"/v1/tasks/{tid}/fail", json={"error": "gateway busy", "error_type": "Busy"}
    )
    assert resp.json()["outcome"] == "failed"

    second = await _poll_one(http, worker_id)  # retried: a new attempt, the checkpoint kept
    assert second["attempt"] == 2
    resp = await http.get(f"/v1/tasks/{second['task_id']}/checkpoint")
    assert resp.json() == {"value": {"n": 1}}
    resp = await http.post(
        f"/v1/tasks/{second['task_id']}/fail",
        json={"error": "card declined", "error_type": "CardDeclined", "retryable": False},
    )
    assert resp.status_code == 200
    with pytest.raises(RunFailedError, match="card declined"):
        await run.result(timeout=TIMEOUT_S)
    state = await run.status()
    assert state.error is not None and state.error.type == "CardDeclined"
    assert state.steps["charge_card"].attempts == 2


async def test_a_vanished_http_worker_gives_its_task_back(
    dagnats_env: DagnatsEnv, http: httpx.AsyncClient
) -> None:
    wf = dagnats.Workflow("handover")
    wf.step("slow")
    await dagnats_env.client.register(wf)
    gone = await _connect(http, "slow", lease_s=5.0)
    run = await dagnats_env.client.start("handover", "x")
    await _poll_one(http, gone)  # ... and never heard of again: the lease lapses in 5 s
    successor = await _connect(http, "slow")
    task = await _poll_one(http, successor)
    assert task["run_id"] == run.run_id and task["delivery"] == 2 and task["attempt"] == 1
    await http.post(f"/v1/tasks/{task['task_id']}/complete", json={"output": "done"})
    assert await run.result(timeout=TIMEOUT_S) == "done"
    resp = await http.post(f"/v1/workers/{gone}/poll", json={"wait_s": 0})
    assert resp.status_code == 404 and "lease" in resp.json()["error"]["message"]


async def test_bridge_bad_input(http: httpx.AsyncClient) -> None:
    resp = await http.post("/v1/workers", json={"name": "w", "tasks": []})
    assert resp.status_code == 422 and "tasks" in resp.json()["error"]["message"]
    resp = await http.post("/v1/workers", json={"name": "w", "tasks": [{"task": "a.b"}]})
    assert resp.status_code == 422 and "task" in resp.json()["error"]["message"]
    worker_id = await _connect(http, "idle")
    resp = await http.post(f"/v1/workers/{worker_id}/poll", json={"wait_s": 31})
    assert resp.status_code == 422 and "wait_s" in resp.json()["error"]["message"]
    resp = await http.post(f"/v1/workers/{worker_id}/poll", json={"wait_s": 0.2})
    assert resp.json() == {"tasks": []}
    resp = await http.post(f"/v1/tasks/{worker_id}-7/fail", json={"error": "x"})
    assert resp.status_code == 404
    resp = await http.post(f"/v1/tasks/{worker_id}-7/fail", json={})
    assert resp.status_code == 422 and "error" in resp.json()["error"]["message"]
    resp = await http.post("/v1/workers/nope/poll", json={})
    assert resp.status_code == 422


async def test_a_long_poll_returns_when_the_bridge_stops(dagnats_env: DagnatsEnv) -> None:
    bridge = Bridge(dagnats_env.nc)
    await bridge.start()
    gw = HttpGateway(dagnats_env.nc, port=0, routers=[Routes(router)], services={SERVICE: bridge})
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=TIMEOUT_S) as http:
            worker_id = await _connect(http, "never")
            polling = asyncio.ensure_future(
                http.post(f"/v1/workers/{worker_id}/poll", json={"wait_s": 30})
            )
            bridge.pause()  # what serve does first when it stops
            resp = await asyncio.wait_for(polling, 5)  # not the 30 s of the poll
            assert resp.json() == {"tasks": []}
            resp = await http.post("/v1/workers", json={"name": "late", "tasks": [{"task": "x"}]})
            assert resp.status_code == 503 and "shutting down" in resp.json()["error"]["message"]
    finally:
        await gw.stop()
        await bridge.stop()
