"""Methodology: the trigger examples end to end on a real nats-server: the workflow files
(with their triggers) registered through the client, ``serve``'s trigger service and HTTP
API beside the test env, a signed webhook and an HTTP request over a socket, and the cron
trigger fired by hand and checked offline with ``trigger test``'s logic."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from dagnats.dag.definition.triggers import CronSpec
from dagnats.server.serve import Serve, ServeOptions
from dagnats.testing import DagnatsEnv
from examples.triggers.send_webhook import SECRET, signature
from examples.triggers.worker import worker

HERE = Path(__file__).parent


@pytest.fixture
async def served(dagnats_env: DagnatsEnv) -> AsyncIterator[Serve]:
    """``dagnats serve`` without its own NATS or engine (the env has them): API, triggers,
    HTTP on a free port."""
    app = Serve(ServeOptions(nats_url=dagnats_env.url, engine=False, http_port=0))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_webhook_and_cron_of_the_report(dagnats_env: DagnatsEnv, served: Serve) -> None:
    client = dagnats_env.client
    dagnats_env.add_worker(worker)
    await client.register(HERE / "reports.json")
    assert sorted(t.id for t in await client.list_triggers()) == [
        "nightly-report",
        "shop-webhook",
    ]
    assert served.http is not None
    body = json.dumps({"orders": [{"id": 1, "amount": 12}, {"id": 2, "amount": 30}]}).encode()
    async with httpx.AsyncClient(base_url=served.http.url, timeout=10) as http:
        resp = await http.post(
            "/hooks/shop/orders", content=body, headers={"X-Signature-256": signature(SECRET, body)}
        )
        assert resp.status_code == 202, resp.text
        unsigned = await http.post("/hooks/shop/orders", content=body)
        assert unsigned.status_code == 401
    report = await client.run(resp.json()["run_id"]).result(timeout=15)
    assert report == "2 orders, 42 in total (webhook)"
    nightly = await client.fire_trigger("nightly-report")
    assert await nightly.result(timeout=15) == "0 orders, 0 in total (manual)"
    # 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
    spec = CronSpec(expression="0 2 * * *", timezone="Europe/Berlin")
    winter, summer = (spec.next_fires(datetime(2026, m, 1, tzinfo=UTC), 1)[0] for m in (1, 7))
    assert (winter.astimezone(UTC).hour, summer.astimezone(UTC).hour) == (1, 0)


async def test_the_quote_endpoint_answers_from_its_run(
    dagnats_env: DagnatsEnv, served: Serve
) -> None:
    client = dagnats_env.client
    dagnats_env.add_worker(worker)
    await client.register(HERE / "quote.json")
    assert served.http is not None
    async with httpx.AsyncClient(base_url=served.http.url, timeout=10) as http:
        resp = await http.post("/api/quote", json={"item": "cake", "count": 2})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"item": "cake", "price": 10}
        assert resp.headers["Cache-Control"] == "no-store"
        run_id = resp.headers["X-Dagnats-Run-Id"]
        unknown = await http.post("/api/quote", json={"item": "soup"})
        assert unknown.status_code == 500 and unknown.json()["error"] == "workflow_failed"
    # The run went on after answering: its audit step ran too.
    assert await client.run(run_id).result(timeout=15) == "quoted cake"
