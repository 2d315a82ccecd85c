"""Methodology: the HTTP API (FastAPI on uvicorn) over real sockets on a real nats-server:
the REST routes, their JSON errors, and the HTTP/1.1 cases the hand-written gateway got
wrong (percent-encoded paths, bad Content-Length, chunked bodies, HEAD), sent as raw bytes
where httpx would refuse to send them."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import dagnats
from dagnats.server.http import MAX_BODY_BYTES, HttpGateway
from dagnats.testing import DagnatsEnv

TIMEOUT_S = 10.0


@pytest.fixture
async def gateway(dagnats_env: DagnatsEnv) -> AsyncIterator[HttpGateway]:
    gw = HttpGateway(dagnats_env.nc, port=0)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def _raw(gw: HttpGateway, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes; the status and body of the answer (the connection is then closed)."""
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _error(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"kind", "message"}
    err: dict[str, Any] = body["error"]
    return err


async def test_rest_round_trip_and_errors(dagnats_env: DagnatsEnv, gateway: HttpGateway) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, x: int) -> int:
        return x * 2

    dagnats_env.add_worker(worker)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=TIMEOUT_S) as http:
        wf = {"name": "rest-flow", "steps": [{"id": "double"}]}
        # curl -d sends a form content type: the JSON is read all the same.
        resp = await http.post(
            "/workflows",
            content=json.dumps(wf),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status_code == 201 and resp.json()["name"] == "rest-flow"
        listed = (await http.get("/workflows")).json()
        assert [w["name"] for w in listed] == ["rest-flow"] and listed[0]["steps"] == 1
        resp = await http.post("/runs", json={"workflow": "rest-flow", "input": 4})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["run_id"]
        assert await dagnats_env.client.run(run_id).result(timeout=TIMEOUT_S) == 8
        runs = (await http.get("/runs", params={"workflow": "rest-flow"})).json()
        assert [r["run_id"] for r in runs] == [run_id] and runs[0]["status"] == "completed"
        assert (await http.get(f"/runs/{run_id}")).json()["output"] == 8
        events = (await http.get(f"/runs/{run_id}/events")).json()
        assert events[0]["type"] == "workflow.started" and events[0]["seq"] > 0
        resp = await http.post(f"/runs/{run_id}/cancel", json={"reason": "late"})
        assert resp.json() == {"run_id": run_id, "status": "completed", "cancelled": False}
        assert (await http.delete(f"/runs/{run_id}")).json() == {"deleted": run_id}
        resp = await http.get(f"/runs/{run_id}")
        assert resp.status_code == 404 and _error(resp)["kind"] == "RunNotFoundError"

        resp = await http.post("/runs", json={"input": 1})
        assert resp.status_code == 422 and "workflow" in _error(resp)["message"]
        resp = await http.post("/runs", json={"workflow": "rest-flow", "extra": 1})
        assert resp.status_code == 422 and "extra" in _error(resp)["message"]
        resp = await http.post("/runs", json={"workflow": "nope"})
        assert resp.status_code == 404 and _error(resp)["kind"] == "WorkflowNotFoundError"
        resp = await http.post("/runs", content=b'{"workflow": ')
        assert resp.status_code == 400 and "invalid JSON" in _error(resp)["message"]
        resp = await http.get("/runs", params={"limit": "many"})
        assert resp.status_code == 422 and "limit" in _error(resp)["message"]
        resp = await http.post("/workflows", json={"name": "bad", "steps": []})
        assert resp.status_code == 400 and _error(resp)["kind"] == "DefinitionError"
        resp = await http.get("/runs/bad%20id")
        assert resp.status_code == 422 and "run_id" in _error(resp)["message"]
        resp = await http.put("/runs")
        assert resp.status_code == 405 and _error(resp)["kind"] == "ApiError"
        resp = await http.get("/nowhere")
        assert resp.status_code == 404 and _error(resp)["kind"] == "NotFoundError"
        resp = await http.post("/approvals/abc/approve", json=True)
        assert resp.status_code == 409 and _error(resp)["kind"] == "ApprovalError"


async def test_http_edge_cases_are_4xx_never_500(gateway: HttpGateway) -> None:
    host = f"Host: 127.0.0.1:{gateway.port}\r\nConnection: close\r\n".encode()
    # Starlette decodes the path before routing: a percent-encoded slash is a separator.
    status, body = await _raw(gateway, b"GET /runs/a%2Fb HTTP/1.1\r\n" + host + b"\r\n")
    assert status == 404 and json.loads(body)["error"]["kind"] == "NotFoundError"
    status, body = await _raw(gateway, b"GET /runs/a%20b HTTP/1.1\r\n" + host + b"\r\n")
    assert status == 422 and b"run_id" in body
    status, body = await _raw(gateway, b"GET /runs/%ZZ HTTP/1.1\r\n" + host + b"\r\n")
    assert status in (400, 404, 422)
    status, _ = await _raw(
        gateway, b"POST /runs HTTP/1.1\r\n" + host + b"Content-Length: abc\r\n\r\n{}"
    )
    assert status == 400
    chunked = b'{"workflow": "missing"}'
    status, body = await _raw(
        gateway,
        b"POST /runs HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(chunked):x}\r\n".encode()
        + chunked
        + b"\r\n0\r\n\r\n",
    )
    assert status == 404 and b"WorkflowNotFoundError" in body  # the chunked body was read
    status, body = await _raw(gateway, b"HEAD /health HTTP/1.1\r\n" + host + b"\r\n")
    assert status == 200 and body == b""
    big = MAX_BODY_BYTES + 1
    status, body = await _raw(
        gateway, b"POST /runs HTTP/1.1\r\n" + host + f"Content-Length: {big}\r\n\r\n".encode()
    )
    assert status == 413 and str(MAX_BODY_BYTES).encode() in body
    # Chunked past the limit (by one byte, with no last chunk): refused as soon as the
    # limit is passed, without waiting for the rest.
    piece = b"x" * (256 * 1024)
    chunks = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") * 4 + b"1\r\nx\r\n"
    status, body = await _raw(
        gateway,
        b"POST /runs HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\n" + chunks,
    )
    assert status == 413


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', html)


async def test_openapi_is_3_1_with_response_schemas(gateway: HttpGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=TIMEOUT_S) as http:
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
        assets = [await http.get(url) for url in _asset_urls(docs.text)]
    assert docs.status_code == 200
    # Swagger UI works offline: every script and stylesheet comes from this server.
    assert len(assets) >= 2 and all(a.status_code == 200 and a.content for a in assets)
    assert "cdn" not in docs.text and "https://" not in docs.text
    assert spec["openapi"].startswith("3.1") and spec["info"]["version"] == dagnats.__version__
    start = spec["paths"]["/runs"]["post"]
    assert start["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunStarted"
    }
    body_ref = start["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.rsplit("/", 1)[1] in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if path not in ("/health", "/ready"):
                assert "422" in op["responses"], (method, path)
                assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }
    assert "WorkflowDef" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
