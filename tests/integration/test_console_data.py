"""Methodology: the console's run page data (``/console/api/runs/{id}``) on a real
nats-server, served by the real FastAPI app over HTTP. Its pending approvals come from the
client's one reader of waits (``dagnats.client.waits``, as ``run status``); each must be its
request event's data beside its step id, the shape the console's script reads: a plain
approval, and one asked with Go's request fields (subject, description, metadata).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import dagnats
from dagnats.protocol import events as ev
from dagnats.server.http import HttpGateway
from dagnats.server.serve import http_routes
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import wait_state


@pytest.fixture
async def gateway(dagnats_env: DagnatsEnv) -> AsyncIterator[HttpGateway]:
    gw = HttpGateway(dagnats_env.nc, port=0, routers=http_routes())
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def test_run_page_lists_pending_approvals_as_their_requests(
    dagnats_env: DagnatsEnv, gateway: HttpGateway
) -> None:
    wf = dagnats.Workflow("console-approvals")
    wf.approval("ok", timeout="2h", message="Ship it?")
    wf.approval(
        "asked",
        timeout="1h",
        subject="approvals.orders",
        description="order 7",
        request_metadata={"amount": 12},
    )
    run = await dagnats_env.client.start(wf, None)
    await wait_state(
        dagnats_env,
        run.run_id,
        lambda s: all(s.steps.get(k) and s.steps[k].waiting == "approval" for k in ("ok", "asked")),
    )
    requested = {
        e.step_id: {"step_id": e.step_id, **e.data}
        async for e in run.events()
        if e.type == ev.STEP_APPROVAL_REQUESTED and isinstance(e.data, dict)
    }
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        resp = await http.get(f"/console/api/runs/{run.run_id}")
    assert resp.status_code == 200, resp.text
    approvals: list[dict[str, Any]] = resp.json()["approvals"]
    assert sorted(approvals, key=lambda a: a["step_id"]) == [requested["asked"], requested["ok"]]
    asked = requested["asked"]
    assert asked["subject"] == "approvals.orders" and asked["metadata"] == {"amount": 12}
    assert requested["ok"]["message"] == "Ship it?"

    await dagnats_env.client.approve(requested["ok"]["token"])
    await wait_state(dagnats_env, run.run_id, lambda s: s.steps["ok"].status == "completed")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        doc = (await http.get(f"/console/api/runs/{run.run_id}")).json()
    assert [a["step_id"] for a in doc["approvals"]] == ["asked"]  # a decided one is gone
