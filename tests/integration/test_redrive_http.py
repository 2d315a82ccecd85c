"""Methodology: the redrive and bulk REST routes over real sockets (httpx) on a real
nats-server, with the routes plugged into the app as ``serve`` does; the OpenAPI document is
checked to carry them with their request and response schemas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import dagnats
from dagnats.server.http import HttpGateway
from dagnats.server.http import redrive as redrive_http
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, wait_state
from tests.integration.test_redrive import Flaky, _failed_run

TIMEOUT_S = 30.0


@pytest.fixture
async def http(dagnats_env: DagnatsEnv) -> AsyncIterator[httpx.AsyncClient]:
    gw = HttpGateway(dagnats_env.nc, port=0, routers=[redrive_http.ROUTES])
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=TIMEOUT_S) as client:
            yield client
    finally:
        await gw.stop()


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    return err


async def test_retry_replay_and_rerun_over_http(
    dagnats_env: DagnatsEnv, http: httpx.AsyncClient
) -> None:
    flaky = Flaky()
    run = await _failed_run(dagnats_env, flaky, "http-retry")
    prefix = run.run_id[:22]
    assert (await http.get(f"/runs/resolve/{prefix}")).json() == {"run_id": run.run_id}
    short = error_of(await http.get("/runs/resolve/abc"), 400)
    assert "at least 8 characters" in short["message"]
    letters = (await http.get("/dead-letters", params={"run_id": run.run_id})).json()
    assert [d["step_id"] for d in letters["dead_letters"]] == ["transform"] and not letters["more"]
    flaky.broken = False
    resp = await http.post(f"/dead-letters/{letters['dead_letters'][0]['seq']}/replay")
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert (
        done["run_id"] == run.run_id
        and done["retry"] == 1
        and done["steps"] == ["transform", "store"]
    )
    assert await run.result(timeout=WAIT_S) == "stored 40"
    err = error_of(await http.post(f"/runs/{prefix}/retry", json={"reason": "again"}), 409)
    assert err["kind"] == "ApiError" and "is completed" in err["message"]
    error_of(await http.post(f"/runs/{prefix}/retry", json={"nope": 1}), 422)
    error_of(await http.post(f"/runs/{prefix}/dead-letters/replay"), 404)
    resp = await http.post(f"/runs/{prefix}/rerun")
    assert resp.status_code == 201, resp.text
    new = resp.json()
    assert new["rerun_of"] == run.run_id and new["run_id"] != run.run_id
    assert await dagnats_env.client.run(new["run_id"]).result(timeout=WAIT_S) == "stored 40"
    error_of(await http.post("/runs/ffffffffffffffff/retry"), 404)


async def test_batch_and_cancel_over_http(dagnats_env: DagnatsEnv, http: httpx.AsyncClient) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def park(ctx: dagnats.TaskContext, inp: Any) -> str:
        await asyncio.sleep(WAIT_S)
        return "late"

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("http-batch", input_schema={"type": "integer"})
    wf.step("park")
    await dagnats_env.client.register(wf)
    resp = await http.post("/runs/batch", json={"workflow": "http-batch", "inputs": [1, "x", 3]})
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert (out["started"], out["failed"]) == (2, 1)
    ids = {r["run_id"] for r in out["results"] if r["run_id"]}
    for rid in ids:
        await wait_state(dagnats_env, rid, lambda s: s.steps["park"].status == "running")
    too_many = {"workflow": "http-batch", "inputs": list(range(1001))}
    error_of(await http.post("/runs/batch", json=too_many), 422)
    error_of(await http.post("/runs/cancel", json={}), 400)
    error_of(await http.post("/runs/cancel", json={"status": "completed"}), 400)
    resp = await http.post("/runs/cancel", json={"workflow": "http-batch", "reason": "bulk"})
    cancelled = resp.json()
    assert set(cancelled["run_ids"]) == ids and cancelled["cancelled"] == 2
    rows = (
        await http.get("/runs", params={"workflow": "http-batch", "since": "2000-01-01T00:00:00Z"})
    ).json()
    assert {r["run_id"] for r in rows} == ids
    error_of(await http.get("/runs", params={"since": "soon"}), 400)


async def test_openapi_documents_the_routes(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    paths = doc["paths"]
    for path, method in [
        ("/runs/{run_id}/retry", "post"),
        ("/runs/{run_id}/rerun", "post"),
        ("/runs/batch", "post"),
        ("/runs/cancel", "post"),
        ("/dead-letters", "get"),
        ("/dead-letters/{seq}/replay", "post"),
        ("/runs/{run_id}/dead-letters/replay", "post"),
    ]:
        assert method in paths[path], path
    schemas = doc["components"]["schemas"]
    assert {"BatchRequest", "CancelManyRequest", "RetryDone", "DeadLetters"} <= set(schemas)
    batch = paths["/runs/batch"]["post"]
    assert "BatchRequest" in str(batch["requestBody"]) and "201" in batch["responses"]
