"""Methodology: the service surface on a real nats-server: resource setup raced from several
connections, API discovery with $SRV.PING, the HTTP gateway over real sockets, and an engine
process SIGKILLed mid-run whose successor must finish the run from the log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dagnats
from dagnats import protocol
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.resources import BUCKETS, setup_resources, stream_configs
from dagnats.protocol.events import Event
from dagnats.server import EmbeddedNats, HttpGateway
from dagnats.testing import DagnatsEnv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


async def test_setup_resources_is_idempotent_and_race_safe(dagnats_server: EmbeddedNats) -> None:
    conns = [await connect_nats(dagnats_server.url) for _ in range(4)]
    try:
        await asyncio.gather(*(setup_resources(nc.jetstream()) for nc in conns))
        await setup_resources(conns[0].jetstream())  # and again, after the race
        js = conns[0].jetstream()
        for cfg in stream_configs():
            assert (await js.stream_info(cfg.name or "")).config.subjects == cfg.subjects
        for b in BUCKETS:
            await js.key_value(b.name)
        await js.object_store(protocol.OBJ_PAYLOADS)
    finally:
        for nc in conns:
            await nc.close()


async def test_api_is_discoverable_with_srv_ping(dagnats_env: DagnatsEnv) -> None:
    reply = await dagnats_env.nc.request("$SRV.PING.dagnats", b"", timeout=5)
    body = json.loads(reply.data)
    assert body["name"] == "dagnats"
    assert body["version"] == dagnats.__version__
    info = json.loads((await dagnats_env.nc.request("$SRV.INFO.dagnats", b"", timeout=5)).data)
    subjects = {e["subject"] for e in info["endpoints"]}
    assert "dagnats.api.run.start" in subjects and "dagnats.api.workflow.register" in subjects


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_http_gateway(dagnats_env: DagnatsEnv) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, x: int) -> int:
        return x * 2

    dagnats_env.add_worker(worker)
    gw = HttpGateway(dagnats_env.nc, port=0)
    await gw.start()
    base = f"http://127.0.0.1:{gw.port}"
    try:
        assert await asyncio.to_thread(_http, "GET", f"{base}/health") == (
            200,
            {"nats": True, "jetstream": True, "status": "ok"},
        )
        assert (await asyncio.to_thread(_http, "GET", f"{base}/ready"))[0] == 200
        wf = {"name": "http-flow", "steps": [{"id": "double"}]}
        status, out = await asyncio.to_thread(_http, "POST", f"{base}/workflows", wf)
        assert status == 201 and out["name"] == "http-flow"
        status, out = await asyncio.to_thread(
            _http, "POST", f"{base}/runs", {"workflow": "http-flow", "input": 21}
        )
        assert status == 201
        assert await dagnats_env.client.run(out["run_id"]).result(timeout=10) == 42
        status, state = await asyncio.to_thread(_http, "GET", f"{base}/runs/{out['run_id']}")
        assert status == 200 and state["output"] == 42
        status, events = await asyncio.to_thread(
            _http, "GET", f"{base}/runs/{out['run_id']}/events"
        )
        assert status == 200 and events[-1]["type"] == "workflow.completed"
        status, err = await asyncio.to_thread(_http, "GET", f"{base}/runs/nope")
        assert status == 404 and err["error"]["kind"] == "RunNotFoundError"
        status, err = await asyncio.to_thread(
            _http, "POST", f"{base}/workflows", {"name": "bad", "steps": []}
        )
        assert status == 400 and "steps" in err["error"]["message"]
        status, spec = await asyncio.to_thread(_http, "GET", f"{base}/openapi.json")
        assert status == 200 and "/runs/{run_id}" in spec["paths"]
        assert spec["info"]["version"] == dagnats.__version__
    finally:
        await gw.stop()


async def test_engine_sigkilled_mid_run_is_finished_by_its_successor() -> None:
    async with DagnatsEnv.start(engine=False) as env:
        worker = dagnats.Worker()
        gate = asyncio.Event()

        @worker.task()
        async def first(ctx: dagnats.TaskContext, x: int) -> int:
            return x + 1

        @worker.task()
        async def second(ctx: dagnats.TaskContext, x: int) -> int:
            await asyncio.wait_for(gate.wait(), 20)
            return x * 10

        env.add_worker(worker)
        first_done = asyncio.Event()

        async def on_history(msg: Any) -> None:
            if Event.from_bytes(msg.data).type == "step.completed":
                first_done.set()

        sub = await env.nc.subscribe(protocol.history_subject("*"), cb=on_history)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "engine_process.py"),
            env.url,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            wf = dagnats.Workflow("crash-flow")
            f = wf.step("first")
            wf.step("second", depends_on=[f])
            await env.client.register(wf)
            run = await env.client.start("crash-flow", 1)
            await asyncio.wait_for(first_done.wait(), 20)
            # Kill at once: the engine has applied `first` but its snapshot write may
            # still be staged (write-behind), which the successor must make up for.
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
            await sub.unsubscribe()
        await env.start_engine()
        gate.set()
        assert await run.result(timeout=30) == 20
        state = await run.status()
        assert [state.steps[s].status for s in ("first", "second")] == ["completed"] * 2
