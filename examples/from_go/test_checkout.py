"""Methodology: two Go-serialised files with Go's dotted names (``shop.order.v2`` calling the
sub-workflow ``shop.payment.v1``) are checked and registered with the real CLI, run on a real
nats-server (``dagnats_env``) with the handlers of ``checkout_worker.py``, and read back
through the CLI, the REST API and the console's API: the user sees the names as written,
dots included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import dagnats
from dagnats.cli import app
from dagnats.dag.definition.rules import load_definition
from dagnats.server.http import HttpGateway
from dagnats.server.serve import http_routes
from dagnats.testing import DagnatsEnv
from examples.from_go import checkout_worker
from examples.from_go.checkout_worker import CAPTURE_FAILS_AT, worker

HERE = Path(__file__).parent
FILES = (HERE / "payment.go.json", HERE / "checkout.go.json")
WAIT_S = 20.0


async def cli(*args: str) -> str:
    """Run ``dagnats ARGS`` (in a thread: the CLI runs its own event loop); its output."""
    result = await asyncio.wait_for(asyncio.to_thread(CliRunner().invoke, app, list(args)), WAIT_S)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_go_files_validate_offline_and_round_trip(path: Path) -> None:
    result = CliRunner().invoke(app, ["workflow", "validate", str(path)])
    assert result.exit_code == 0 and "valid" in result.output, result.output
    wf = dagnats.Workflow.from_json(path.read_text())
    assert load_definition(wf.to_dict(format="go")) == wf.to_definition()
    assert wf.to_dict(format="go")["name"] == json.loads(path.read_text())["name"]


async def test_the_order_is_paid_by_the_sub_workflow(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    url = dagnats_env.url
    for path in FILES:
        await cli("workflow", "register", str(path), "--nats-url", url)
    client = dagnats_env.client
    order = {"order_id": "A1", "items": [{"price": 30, "qty": 2}, {"price": 15}]}
    run = await client.start("shop.order.v2", order)
    assert await run.result(timeout=WAIT_S) == {
        "order_id": "A1",
        "payment_id": "pay-examplepay-A1",
        "charged": 75,
        "status": "confirmed",
    }
    status = await run.status()
    assert status.workflow == "shop.order.v2"
    assert set(status.steps) == {"order.quote", "payment.charge", "order.confirm", "order.alert"}
    child_id = status.steps["payment.charge"].child_run_id
    assert child_id is not None
    child = await client.get_run(child_id)
    assert child.workflow == "shop.payment.v1" and child.status == "completed"
    assert child.steps["card.capture"].output == {"payment_id": "pay-examplepay-A1", "captured": 75}

    # What users read: the CLI and the REST API show the names as the files wrote them.
    order_d4 = json.dumps({"order_id": "D4", "items": [{"price": 9}]})
    watched = await cli("run", "start", "shop.order.v2", order_d4, "-w", "--nats-url", url)
    # The watch names the dotted steps and the child's workflow as written.
    assert "step.payment.charge: child run " in watched and "of shop.payment.v1" in watched
    assert '"payment_id":"pay-examplepay-D4"' in watched
    listed = await cli("workflow", "list", "--nats-url", dagnats_env.url)
    assert "shop.order.v2" in listed and "shop.payment.v1" in listed
    shown = await cli("run", "status", run.run_id, "--nats-url", dagnats_env.url)
    assert "shop.order.v2" in shown and "payment.charge" in shown
    gateway = HttpGateway(dagnats_env.nc, port=0, routers=http_routes())  # REST + console
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT_S) as http:
            got = await http.get("/workflows/shop.payment.v1")
            assert got.status_code == 200, got.text
            assert got.json()["definition"]["steps"][0]["id"] == "card.authorize"
            runs = (await http.get("/runs", params={"workflow": "shop.order.v2"})).json()
            assert len(runs) == 2 and run.run_id in [r["run_id"] for r in runs]
            assert {r["workflow"] for r in runs} == {"shop.order.v2"}
            console = (await http.get("/console/api/workflows/shop.order.v2")).json()
            assert console["name"] == "shop.order.v2"
            assert "payment.charge" in json.dumps(console["graph"])
            page = (await http.get(f"/console/api/runs/{run.run_id}")).json()
            assert "shop.order.v2" in json.dumps(page) and "order.confirm" in json.dumps(page)
    finally:
        await gateway.stop()


async def test_a_declined_card_fails_the_payment_and_the_order_alerts(
    dagnats_env: DagnatsEnv,
) -> None:
    dagnats_env.add_worker(worker)
    for path in FILES:
        await dagnats_env.client.register(path.read_text())
    declined = await dagnats_env.client.start(
        "shop.order.v2", {"order_id": "B2", "items": [{"price": 5000}]}
    )
    result = await declined.result(timeout=WAIT_S)
    assert result["status"] == "payment_failed" and result["order_id"] == "B2"
    assert result["reason"].startswith("sub-workflow run ")
    assert result["reason"].endswith("card declined: 5000 > 1000")
    assert (await declined.status()).steps["payment.charge"].status == "recovered"


async def test_a_failed_capture_voids_the_authorisation(dagnats_env: DagnatsEnv) -> None:
    checkout_worker.voided.clear()
    dagnats_env.add_worker(worker)
    for path in FILES:
        await dagnats_env.client.register(path.read_text())
    run = await dagnats_env.client.start(
        "shop.order.v2", {"order_id": "C3", "items": [{"price": CAPTURE_FAILS_AT}]}
    )
    result = await run.result(timeout=WAIT_S)
    assert result["status"] == "payment_failed"
    assert "capture refused for examplepay-C3" in result["reason"]
    assert checkout_worker.voided == [
        {
            "original_step": "card.authorize",
            "original_output": {"auth_id": "examplepay-C3", "amount": CAPTURE_FAILS_AT},
            "trigger_step": "card.capture",
            "trigger_error": "capture refused for examplepay-C3",
            "trigger_error_type": "NonRetryableError",  # dagnats adds the error's type
        }
    ]
