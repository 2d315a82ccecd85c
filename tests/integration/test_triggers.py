"""Methodology: triggers on a real nats-server through the client and real HTTP. The cron
tests drive two trigger services with one injected clock (``tick(now)``) and count the
runs per minute in the history stream; webhooks and HTTP triggers go over sockets to the
ASGI app; subject triggers are core NATS publishes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import dagnats
from dagnats import protocol
from dagnats._nats.history import has_history
from dagnats.errors import ApiError, DefinitionError, NotFoundError, WorkflowNotFoundError
from dagnats.protocol.ids import cron_run_id
from dagnats.server.http.hooks import sign
from dagnats.server.serve import Serve, ServeOptions
from dagnats.testing import DagnatsEnv
from tests.integration.trigger_harness import declared_too_big, second_service, trigger_stack

TIMEOUT_S = 15.0
T0 = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)  # a Tuesday, 09:00 UTC


def _echo_flow(name: str = "echo") -> dict[str, Any]:
    return {"name": name, "steps": [{"id": "echo"}]}


def _worker() -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def echo(ctx: dagnats.TaskContext, data: Any) -> Any:
        return data

    return worker


async def _runs_of(env: DagnatsEnv, workflow: str) -> list[str]:
    return [r.run_id for r in await env.client.list_runs(workflow=workflow, limit=1000)]


async def test_trigger_records_through_the_client(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    tid = await client.create_trigger(
        {
            "id": "nightly",
            "workflow_id": "echo",
            "cron": {"expression": "0 2 * * *", "timezone": "Europe/Berlin"},
        }
    )
    assert tid == "nightly"
    [listed] = await client.list_triggers()
    assert listed.cron is not None and listed.cron.timezone == "Europe/Berlin"
    assert listed.enabled and listed.source == "api"
    await client.disable_trigger(tid)
    assert not (await client.get_trigger(tid)).enabled
    await client.enable_trigger(tid)
    assert (await client.get_trigger(tid)).enabled
    run = await client.fire_trigger(tid, {"by": "hand"})
    dagnats_env.add_worker(_worker())
    out = await run.result(timeout=TIMEOUT_S)
    assert out["trigger"] == "manual" and out["source"] == "nightly"
    assert out["workflow_id"] == "echo" and out["data"] == {"by": "hand"}
    [fire] = await client.trigger_history(tid)
    assert fire["kind"] == "manual" and fire["run_id"] == run.run_id
    await client.delete_trigger(tid)
    assert await client.list_triggers() == []
    with pytest.raises(NotFoundError, match="nightly"):
        await client.get_trigger(tid)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"cron": {"expression": "61 * * * *"}}, "does not parse"),
        ({"cron": {"expression": "* * *"}}, "5 fields"),
        ({"cron": {"expression": "* * * * *", "timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"webhook": {"path": "/api/x"}}, "must start with '/hooks/'"),
        ({"http": {"path": "/hooks/x"}}, "must start with '/api/'"),
        ({"http": {"path": "/api/x", "secret": "short"}}, "http.secret"),
        ({"http": {"path": "/api/x", "method": "TRACE"}}, "http.method"),
        ({}, "exactly one of"),
        ({"cron": {"expression": "* * * * *"}, "subject": {"subject": "a"}}, "exactly one of"),
        ({"cron": {"expression": "* * * * *"}, "debounce": {"period": "1s"}}, "debounce"),
        ({"subject": {"subject": "a"}, "colour": "red"}, "colour: unknown field"),
    ],
)
async def test_bad_triggers_are_refused_naming_the_field(
    dagnats_env: DagnatsEnv, spec: dict[str, Any], words: str
) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    with pytest.raises(DefinitionError, match=words):
        await client.create_trigger({"id": "bad", "workflow_id": "echo", **spec})
    # The server refuses the same (a client that skips the local check gets the same error).
    with pytest.raises(DefinitionError, match=words):
        await client.call(
            "trigger.create", {"trigger": {"id": "bad", "workflow_id": "echo", **spec}}
        )
    assert await client.list_triggers() == []


async def test_conflicts_and_unknown_workflows_create_nothing(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        await client.create_trigger({"workflow_id": "nope", "subject": {"subject": "x"}})
    await client.create_trigger(
        {"id": "h1", "workflow_id": "echo", "http": {"path": "/api/orders", "method": "post"}}
    )
    with pytest.raises(ApiError, match="already served by trigger 'h1'") as err:
        await client.create_trigger(
            {"id": "h2", "workflow_id": "echo", "http": {"path": "/api/orders"}}
        )
    assert err.value.code == 409
    # Another method on the same path is fine.
    await client.create_trigger(
        {"id": "h3", "workflow_id": "echo", "http": {"path": "/api/orders", "method": "GET"}}
    )
    await client.create_trigger(
        {"id": "w1", "workflow_id": "echo", "webhook": {"path": "/hooks/a"}}
    )
    with pytest.raises(ApiError, match="already used by trigger 'w1'"):
        await client.create_trigger(
            {"id": "w2", "workflow_id": "echo", "webhook": {"path": "/hooks/a"}}
        )
    with pytest.raises(ApiError, match="already exists"):
        await client.create_trigger(
            {"id": "w1", "workflow_id": "echo", "webhook": {"path": "/hooks/b"}}
        )
    assert sorted(t.id for t in await client.list_triggers()) == ["h1", "h3", "w1"]


async def _history_starts(env: DagnatsEnv, run_id: str) -> int:
    return sum([e.type == "workflow.started" async for e in env.client.run(run_id).events()])


async def test_cron_fires_each_minute_once_with_two_services(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    clock = {"now": T0}
    await client.create_trigger(
        {"id": "every2", "workflow_id": "echo", "cron": {"expression": "*/2 * * * *"}}
    )
    async with (
        trigger_stack(dagnats_env, now=lambda: clock["now"], http=False) as stack,
        second_service(dagnats_env, now=lambda: clock["now"]) as other,
    ):
        fired: list[str] = []
        for minute in range(6):  # 09:00 .. 09:05: fires at :00, :02, :04
            clock["now"] = T0 + timedelta(minutes=minute)
            a, b = await asyncio.gather(stack.service.tick(), other.tick())
            fired += a + b
            # A restart inside the minute (a fresh service) repeats nothing.
            async with second_service(dagnats_env, now=lambda: clock["now"]) as third:
                fired += await third.tick()
        minutes = [int((T0 + timedelta(minutes=m)).timestamp() // 60) for m in (0, 2, 4)]
        expected = [cron_run_id("every2", m) for m in minutes]
        # Each service reports the starts it won (the first tick may be its own loop's).
        assert len(fired) == len(set(fired)) and set(fired) <= set(expected)
        dagnats_env.add_worker(_worker())
        for run_id in expected:
            out = await client.run(run_id).result(timeout=TIMEOUT_S)
            assert out["trigger"] == "cron" and out["data"] is None
            assert await _history_starts(dagnats_env, run_id) == 1
        assert sorted(await _runs_of(dagnats_env, "echo")) == sorted(expected)
        history = await client.trigger_history("every2")
        assert [h["minute"] for h in history] == minutes[::-1]


async def test_cron_timezone_and_bounded_backfill(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    # 10:00 in Berlin is 09:00 UTC in December.
    await client.create_trigger(
        {
            "id": "berlin",
            "workflow_id": "echo",
            "cron": {"expression": "0 10 * * *", "timezone": "Europe/Berlin"},
        }
    )
    await client.create_trigger(
        {
            "id": "minutely",
            "workflow_id": "echo",
            "cron": {"expression": "* * * * *", "backfill": True},
        }
    )
    clock = {"now": T0}
    t0_minute = int(T0.timestamp() // 60)
    async with trigger_stack(dagnats_env, now=lambda: clock["now"], http=False) as stack:
        await stack.service.tick()  # (its own loop ticks at start too: no matter)
        assert stack.service.fired == 2
    for run_id in (cron_run_id("berlin", t0_minute), cron_run_id("minutely", t0_minute)):
        assert await has_history(dagnats_env.nc.jetstream(), run_id)
    # Three hours of downtime: the backfilling trigger fires the last 100 minutes only.
    clock["now"] = T0 + timedelta(hours=3)
    async with trigger_stack(dagnats_env, now=lambda: clock["now"], http=False) as stack:
        await stack.service.tick()
        assert stack.service.fired == 100
    now_minute = t0_minute + 180
    js = dagnats_env.nc.jetstream()
    assert await has_history(js, cron_run_id("minutely", now_minute - 99))
    assert not await has_history(js, cron_run_id("minutely", now_minute - 100))
    history = await dagnats_env.client.trigger_history("minutely")
    assert len(history) == 50 and history[0]["minute"] == now_minute  # bounded, newest first


async def test_disabled_cron_trigger_does_not_fire(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    await client.create_trigger(
        {"id": "off", "workflow_id": "echo", "enabled": False, "cron": {"expression": "* * * * *"}}
    )
    async with trigger_stack(dagnats_env, now=lambda: T0, http=False) as stack:
        assert await stack.service.tick() == []


async def test_subject_trigger_starts_one_run_per_message(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    await client.create_trigger(
        {"id": "orders", "workflow_id": "echo", "subject": {"subject": "shop.orders"}}
    )
    dagnats_env.add_worker(_worker())
    async with trigger_stack(dagnats_env, http=False), second_service(dagnats_env):
        replies = [
            await dagnats_env.nc.request("shop.orders", json.dumps({"n": i}).encode(), timeout=5)
            for i in range(3)
        ]
        bad = await dagnats_env.nc.request("shop.orders", b"not json", timeout=5)
    run_ids = [json.loads(r.data)["run_id"] for r in replies]
    assert "not JSON" in json.loads(bad.data)["error"]
    outs = [await client.run(r).result(timeout=TIMEOUT_S) for r in run_ids]
    assert [o["data"] for o in outs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(o["trigger"] == "subject" for o in outs)
    assert sorted(await _runs_of(dagnats_env, "echo")) == sorted(run_ids)  # one run each


async def test_webhook_signature_limits_and_methods(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    await client.create_trigger(
        {
            "id": "gh",
            "workflow_id": "echo",
            "webhook": {"path": "/hooks/github", "secret": "s3cret"},
        }
    )
    dagnats_env.add_worker(_worker())
    async with (
        trigger_stack(dagnats_env) as stack,
        httpx.AsyncClient(base_url=stack.http.url, timeout=TIMEOUT_S) as http,
    ):
        body = json.dumps({"action": "opened"}).encode()
        ok = await http.post(
            "/hooks/github", content=body, headers={"X-Signature-256": sign("s3cret", body)}
        )
        assert ok.status_code == 202, ok.text
        run_id = ok.json()["run_id"]
        assert ok.headers["X-Dagnats-Run-Id"] == run_id
        bad = await http.post(
            "/hooks/github", content=body, headers={"X-Signature-256": sign("wrong", body)}
        )
        assert bad.status_code == 401 and "X-Signature-256" in bad.json()["error"]["message"]
        assert (await http.post("/hooks/github", content=body)).status_code == 401
        assert (await http.get("/hooks/github")).status_code == 405
        assert (await http.post("/hooks/nope", content=body)).status_code == 404
        assert await declared_too_big(stack.http, "/hooks/github", 1024 * 1024 + 1) == 413
    out = await client.run(run_id).result(timeout=TIMEOUT_S)
    assert out["trigger"] == "webhook" and out["data"] == {"action": "opened"}
    assert await _runs_of(dagnats_env, "echo") == [run_id]  # refused requests started nothing


def _http_flow() -> dict[str, Any]:
    return {
        "name": "quote",
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "price"},
            {
                "id": "answer",
                "type": "respond",
                "depends_on": ["price"],
                "config": {
                    "status": 201,
                    "headers": {"X-Quote": "yes"},
                    "body_from": "quote",
                },
            },
            {"id": "after", "depends_on": ["answer"], "task": "price"},
        ],
    }


def _http_worker(gate: asyncio.Event) -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def price(ctx: dagnats.TaskContext, env: Any) -> Any:
        if ctx.step_id == "after":
            return "done"
        data = env["data"]
        body = json.loads(__import__("base64").b64decode(data["body"]) or b"{}")
        if body.get("fail"):
            raise dagnats.NonRetryableError("no price")
        if body.get("slow"):
            await asyncio.wait_for(gate.wait(), 30)
        return {"quote": {"item": body.get("item"), "price": 42, "method": data["method"]}}

    return worker


async def test_http_trigger_answers_from_the_respond_step(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_http_flow())
    await client.create_trigger(
        {
            "id": "quote",
            "workflow_id": "quote",
            "http": {
                "path": "/api/quote",
                "method": "POST",
                "timeout_ms": 1500,
                "idempotency_header": "Idempotency-Key",
            },
        }
    )
    gate = asyncio.Event()
    dagnats_env.add_worker(_http_worker(gate))
    async with (
        trigger_stack(dagnats_env) as stack,
        httpx.AsyncClient(base_url=stack.http.url, timeout=TIMEOUT_S) as http,
    ):
        resp = await http.post("/api/quote", json={"item": "tea"})
        assert resp.status_code == 201, resp.text
        assert resp.json() == {"item": "tea", "price": 42, "method": "POST"}
        assert resp.headers["X-Quote"] == "yes"
        assert resp.headers["content-type"].startswith("application/json")
        run_id = resp.headers["X-Dagnats-Run-Id"]
        # The run goes on after answering.
        assert await client.run(run_id).result(timeout=TIMEOUT_S) == "done"

        failed = await http.post("/api/quote", json={"fail": True})
        assert failed.status_code == 500
        assert failed.json() == {
            "error": "workflow_failed",
            "run_id": failed.headers["X-Dagnats-Run-Id"],
        }

        slow = await http.post("/api/quote", json={"slow": True})
        assert slow.status_code == 504 and slow.json()["error"] == "workflow_timeout"
        slow_id = slow.headers["X-Dagnats-Run-Id"]
        assert (await client.get_run(slow_id)).status == "running"  # the run goes on
        await client.cancel(slow_id)

        key = {"Idempotency-Key": "order-7"}
        first = await http.post("/api/quote", json={"item": "cake"}, headers=key)
        again = await http.post("/api/quote", json={"item": "other"}, headers=key)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() == {"item": "cake", "price": 42, "method": "POST"}
        assert again.headers["X-Dagnats-Run-Id"] == first.headers["X-Dagnats-Run-Id"]

        assert (await http.get("/api/quote")).status_code == 405
        assert (await http.post("/api/unknown")).status_code == 404
        doc = (await http.get("/openapi.json")).json()
        endpoint = doc["paths"]["/api/quote"]["post"]
        assert endpoint["requestBody"]["content"]["application/json"]["schema"] == {
            "type": "object"
        }
        assert set(endpoint["responses"]) == {"200", "500", "503", "504"}
        gate.set()


async def test_http_trigger_cancelled_run_is_503(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_http_flow())
    await client.create_trigger(
        {
            "id": "quote",
            "workflow_id": "quote",
            "http": {"path": "/api/quote", "timeout_ms": 10_000},
        }
    )
    gate = asyncio.Event()
    dagnats_env.add_worker(_http_worker(gate))
    async with (
        trigger_stack(dagnats_env) as stack,
        httpx.AsyncClient(base_url=stack.http.url, timeout=TIMEOUT_S) as http,
    ):
        call = asyncio.create_task(http.post("/api/quote", json={"slow": True}))
        [run] = [r async for r in _wait_runs(dagnats_env, "quote", 1)]
        await client.cancel(run)
        resp = await asyncio.wait_for(call, TIMEOUT_S)
    assert resp.status_code == 503 and resp.headers["X-Dagnats-Run-Id"] == run
    gate.set()


async def _wait_runs(env: DagnatsEnv, workflow: str, count: int) -> Any:
    """Yield the run ids of ``workflow`` once ``count`` exist (a history subscription)."""
    sub = await env.nc.subscribe("history.>")
    try:
        seen: list[str] = []
        while len(seen) < count:
            msg = await sub.next_msg(timeout=TIMEOUT_S)
            event = json.loads(msg.data)
            if event["type"] == "workflow.started" and event["data"]["workflow"] == workflow:
                seen.append(event["run_id"])
        for run_id in seen:
            yield run_id
    finally:
        await sub.unsubscribe()


async def test_debounced_webhook_starts_once_with_the_last_data(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    await client.register(_echo_flow())
    await client.create_trigger(
        {
            "id": "burst",
            "workflow_id": "echo",
            "webhook": {"path": "/hooks/burst"},
            "debounce": {"period": "300ms", "timeout": "5s", "key": "user"},
        }
    )
    dagnats_env.add_worker(_worker())
    async with (
        trigger_stack(dagnats_env) as stack,
        httpx.AsyncClient(base_url=stack.http.url, timeout=TIMEOUT_S) as http,
    ):
        runs = _wait_runs(dagnats_env, "echo", 2)
        started = asyncio.ensure_future(runs.__anext__())
        for n in range(4):
            resp = await http.post("/hooks/burst", json={"user": "ada", "n": n})
            assert resp.status_code == 202 and resp.json() == {"run_id": None, "held": True}
        await http.post("/hooks/burst", json={"user": "bob", "n": 9})
        first = await asyncio.wait_for(started, TIMEOUT_S)
        second = await runs.__anext__()
    outs = [await client.run(r).result(timeout=TIMEOUT_S) for r in (first, second)]
    assert sorted((o["data"]["user"], o["data"]["n"]) for o in outs) == [("ada", 3), ("bob", 9)]
    assert len(await _runs_of(dagnats_env, "echo")) == 2


async def test_workflow_file_registers_its_triggers(dagnats_env: DagnatsEnv) -> None:
    client = dagnats_env.client
    wf = {
        **_echo_flow("filed"),
        "triggers": [
            {"cron": {"expression": "0 * * * *"}},
            {"id": "filed-hook", "webhook": {"path": "/hooks/filed"}},
        ],
    }
    await client.register(wf)
    ids = sorted(t.id for t in await client.list_triggers(workflow="filed"))
    assert ids == ["filed-cron-0", "filed-hook"]
    # Registering the file again without the cron trigger removes it.
    await client.register({**wf, "triggers": wf["triggers"][1:]})
    assert [t.id for t in await client.list_triggers()] == ["filed-hook"]
    with pytest.raises(DefinitionError, match="differs from the workflow"):
        await client.register(
            {**wf, "triggers": [{"workflow_id": "other", "subject": {"subject": "x"}}]}
        )
    bad_def = {**wf, "steps": [], "triggers": [{"subject": {"subject": "y"}}]}
    with pytest.raises(DefinitionError):
        await client.register(bad_def)
    assert [t.id for t in await client.list_triggers()] == ["filed-hook"]  # nothing half-made
    assert protocol.KV_TRIGGERS == "triggers"


async def test_the_trigger_service_alone_as_in_dagnats_triggers(dagnats_env: DagnatsEnv) -> None:
    """``dagnats triggers --http-port``: no API or engine in the process, its own records."""
    client = dagnats_env.client
    await client.register(_echo_flow())
    await client.create_trigger(
        {"id": "alone", "workflow_id": "echo", "subject": {"subject": "alone.in"}}
    )
    await client.create_trigger(
        {"id": "alone-hook", "workflow_id": "echo", "webhook": {"path": "/hooks/alone"}}
    )
    dagnats_env.add_worker(_worker())
    opts = ServeOptions(
        nats_url=dagnats_env.url, engine=False, api=False, http_port=0, triggers=True
    )
    app = Serve(opts)
    await app.start()
    try:
        assert app.api is None and app.http is not None
        reply = await dagnats_env.nc.request("alone.in", b'{"x": 1}', timeout=5)
        by_subject = json.loads(reply.data)["run_id"]
        async with httpx.AsyncClient(base_url=app.http.url, timeout=TIMEOUT_S) as http:
            resp = await http.post("/hooks/alone", json={"y": 2})
        assert resp.status_code == 202, resp.text
        by_hook = resp.json()["run_id"]
    finally:
        await app.stop()
    assert (await client.run(by_subject).result(timeout=TIMEOUT_S))["data"] == {"x": 1}
    assert (await client.run(by_hook).result(timeout=TIMEOUT_S))["data"] == {"y": 2}
