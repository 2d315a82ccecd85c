"""Methodology: scheduled runs and the trigger/scheduling CLI and REST on a real nats-server.

A run scheduled a couple of seconds ahead is ``scheduled`` (listed, no history), survives
an engine restart (its timer is on ``TIMERS``) and then runs; one cancelled before its time
never starts. The CLI runs in typer's runner in a thread (its own event loop); REST goes
over a socket to the ASGI app with the trigger routes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

import dagnats
from dagnats._nats.history import has_history
from dagnats.cli.app import app
from dagnats.errors import ApiError
from dagnats.testing import DagnatsEnv
from tests.integration.trigger_harness import trigger_stack

TIMEOUT_S = 15.0
runner = CliRunner()


async def cli(*args: str) -> Result:
    return await asyncio.wait_for(asyncio.to_thread(runner.invoke, app, list(args)), 30.0)


def _flow() -> dict[str, Any]:
    return {"name": "later", "steps": [{"id": "echo"}]}


def _worker() -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def echo(ctx: dagnats.TaskContext, data: Any) -> Any:
        return data

    return worker


async def test_a_scheduled_run_waits_survives_an_engine_restart_and_runs(
    dagnats_env: DagnatsEnv,
) -> None:
    client = dagnats_env.client
    await client.register(_flow())
    dagnats_env.add_worker(_worker())
    at = datetime.now(UTC) + timedelta(seconds=2.5)
    run = await client.start("later", {"n": 1}, run_at=at)
    assert run.run_at is not None
    state = await run.status()
    assert state.status == "scheduled" and state.input == {"n": 1}
    [listed] = await client.list_runs(scheduled=True)
    assert listed.run_id == run.run_id and listed.status == "scheduled"
    assert not await has_history(dagnats_env.nc.jetstream(), run.run_id)
    # The engine goes away and comes back before the time: the timer is durable.
    await dagnats_env.stop_engine()
    await dagnats_env.start_engine()
    assert await run.result(timeout=TIMEOUT_S) == {"n": 1}
    [started, *_] = [e async for e in run.events()]
    assert started.ts >= at - timedelta(milliseconds=50)
    assert await client.list_runs(scheduled=True) == []


async def test_a_run_cancelled_before_its_time_never_starts(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_flow())
    dagnats_env.add_worker(_worker())
    soon = await client.start("later", "x", run_at=datetime.now(UTC) + timedelta(seconds=1.5))
    other = await client.start("later", "y", run_at=datetime.now(UTC) + timedelta(seconds=1.6))
    waiting = asyncio.ensure_future(soon.result(timeout=TIMEOUT_S))
    assert await client.cancel(soon.run_id)
    with pytest.raises(dagnats.RunCancelledError):  # a waiter that was there, and a late one
        await waiting
    with pytest.raises(dagnats.RunCancelledError):
        await client.run(soon.run_id).result(timeout=TIMEOUT_S)
    assert (await soon.status()).status == "cancelled"
    assert await other.result(timeout=TIMEOUT_S) == "y"  # the other one ran at its time
    assert not await has_history(dagnats_env.nc.jetstream(), soon.run_id)
    assert [r.run_id for r in await client.list_runs(workflow="later")] == [other.run_id]


@pytest.mark.parametrize(
    ("run_at", "words"),
    [
        ("2001-01-01T00:00:00Z", "in the past"),
        ("tomorrow", "not an RFC 3339 time"),
        ("2030-01-01T00:00:00", "no time zone offset"),
        ("2099-01-01T00:00:00Z", "more than 365 days ahead"),
    ],
)
async def test_bad_run_at_is_refused_and_nothing_is_created(
    dagnats_env: DagnatsEnv, run_at: str, words: str
) -> None:
    client = dagnats_env.client
    await client.register(_flow())
    with pytest.raises(ApiError, match=words) as err:
        await client.start("later", None, run_at=run_at)
    assert err.value.code == 400
    assert await client.list_runs(scheduled=True) == []
    assert await client.list_runs() == []


async def test_scheduling_and_triggers_over_rest(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_flow())
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with (
        trigger_stack(dagnats_env) as stack,
        httpx.AsyncClient(base_url=stack.http.url, timeout=TIMEOUT_S) as http,
    ):
        resp = await http.post("/runs", json={"workflow": "later", "input": 1, "run_at": at})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["status"] == "scheduled" and body["run_at"]
        run_id = body["run_id"]
        listed = (await http.get("/runs", params={"scheduled": "true"})).json()
        assert [r["run_id"] for r in listed] == [run_id]
        assert (await http.get(f"/runs/{run_id}")).json()["status"] == "scheduled"
        assert (await http.get(f"/runs/{run_id}/scheduled")).json()["status"] == "scheduled"
        assert (await http.delete(f"/runs/{run_id}/scheduled")).json() == {
            "run_id": run_id,
            "cancelled": True,
        }
        assert (await http.get(f"/runs/{run_id}")).json()["status"] == "cancelled"
        past = await http.post(
            "/runs", json={"workflow": "later", "run_at": "2001-01-01T00:00:00Z"}
        )
        assert past.status_code == 400 and "in the past" in past.json()["error"]["message"]

        created = await http.post(
            "/triggers",
            json={"id": "t1", "workflow_id": "later", "cron": {"expression": "0 * * * *"}},
        )
        assert created.status_code == 201, created.text
        bad = await http.post(
            "/triggers", json={"workflow_id": "later", "cron": {"expression": "0 25 * * *"}}
        )
        assert bad.status_code == 400 and "cron.expression" in bad.json()["error"]["message"]
        assert [t["id"] for t in (await http.get("/triggers")).json()] == ["t1"]
        assert (await http.post("/triggers/t1/disable")).json()["enabled"] is False
        assert (await http.post("/triggers/t1/enable")).json()["enabled"] is True
        fired = (await http.post("/triggers/t1/fire", json={"k": 1})).json()
        assert fired["workflow"] == "later"
        history = (await http.get("/triggers/t1/history")).json()
        assert history[0]["run_id"] == fired["run_id"] and history[0]["kind"] == "manual"
        assert (await http.get("/triggers/t1")).json()["fires"] == 1
        assert (await http.delete("/triggers/t1")).json() == {"deleted": "t1"}
        assert (await http.get("/triggers/t1")).status_code == 404
        doc = (await http.get("/openapi.json")).json()
        assert "/triggers" in doc["paths"] and "TriggerDef" in doc["components"]["schemas"]


async def test_cli_triggers_and_scheduled_runs(dagnats_env: DagnatsEnv) -> None:
    url = dagnats_env.url
    await dagnats_env.client.register(_flow())
    res = await cli(
        "trigger",
        "create",
        "later",
        "--cron",
        "*/5 * * * *",
        "--tz",
        "Asia/Tokyo",
        "--id",
        "every5",
        "--nats-url",
        url,
    )
    assert res.exit_code == 0, res.output
    assert "Trigger every5 created (cron)" in res.output
    res = await cli(
        "trigger", "create", "later", "--webhook", "/hooks/in", "--secret", "abc", "--nats-url", url
    )
    assert res.exit_code == 0, res.output
    res = await cli("trigger", "list", "--nats-url", url)
    assert "every5" in res.output and "POST /hooks/in (signed)" in res.output
    res = await cli("trigger", "disable", "every5", "--nats-url", url)
    assert res.exit_code == 0 and "disabled" in res.output
    res = await cli("trigger", "show", "every5", "--nats-url", url)
    assert json.loads(res.output)["enabled"] is False
    res = await cli("trigger", "fire", "every5", '{"a": 1}', "--nats-url", url, "--json")
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.output)["run_id"]
    res = await cli("trigger", "history", "every5", "--nats-url", url)
    assert run_id in res.output and "manual" in res.output
    res = await cli(
        "trigger", "create", "later", "--http", "/api/x", "--secret", "short", "--nats-url", url
    )
    assert res.exit_code == 1 and "http.secret" in res.output
    res = await cli("trigger", "create", "nope", "--subject", "s", "--nats-url", url)
    assert res.exit_code == 1 and "'nope' is not registered" in res.output
    res = await cli("trigger", "delete", "every5", "--nats-url", url)
    assert res.exit_code == 0
    res = await cli("trigger", "delete", "every5", "--nats-url", url)
    assert res.exit_code == 1 and "not found" in res.output

    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    res = await cli("run", "start", "later", '"x"', "--at", at, "--nats-url", url)
    assert res.exit_code == 0 and "scheduled for" in res.output, res.output
    res = await cli("run", "list", "--scheduled", "--nats-url", url, "--json")
    [row] = json.loads(res.output)
    res = await cli("run", "list", "--scheduled", "--nats-url", url)
    assert "STARTS (UTC)" in res.output and row["run_id"] in res.output
    res = await cli("run", "cancel", row["run_id"], "--nats-url", url)
    assert res.exit_code == 0 and "cancel requested" in res.output, res.output
    res = await cli("run", "status", row["run_id"], "--nats-url", url)
    assert "cancelled" in res.output, res.output
    res = await cli("run", "list", "--scheduled", "--nats-url", url)
    assert "No scheduled runs." in res.output
    res = await cli("run", "start", "later", "--at", "yesterday", "--nats-url", url)
    assert res.exit_code == 1 and "not an RFC 3339 time" in res.output
    res = await cli("run", "start", "later", "--at", "2001-01-01T00:00:00Z", "--nats-url", url)
    assert res.exit_code == 1 and "in the past" in res.output
