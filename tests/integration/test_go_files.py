"""The Go DagNats files run on a real server with the behaviour DAGNATS-FORMAT.md describes.

Each reference file (``tests/fixtures/reference``, kept unchanged) runs beside the same
definition as Go's encoder writes it (``tests/fixtures/go``: integer nanoseconds,
``"timeout": 0``, ``"task": ""``, ``null``s, ``aux_steps``). ``signals.json`` covers the Go
forms of the waiting steps: a ``wait_for_event`` ``match`` compared as strings, a sleep
``until_input_path``, an approval published on its core NATS ``subject``, a ``skip_if``
object, ``cancel_on`` and a dot-path ``idempotency_key``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

import dagnats
from dagnats.protocol import events as ev
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, wait_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORMS = ("reference", "go")


def fixture(form: str, name: str) -> str:
    return (FIXTURES / form / name).read_text()


@pytest.mark.parametrize("form", FORMS)
async def test_hello_world(dagnats_env: DagnatsEnv, form: str) -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def greet(ctx: dagnats.TaskContext, name: str) -> str:
        return f"Hello, {name}!"

    @worker.task()
    async def uppercase(ctx: dagnats.TaskContext, text: str) -> str:
        return text.upper()

    dagnats_env.add_worker(worker)
    await dagnats_env.client.register(fixture(form, "hello-world.json"))
    run = await dagnats_env.client.start("hello-world", "Ada")
    assert await run.result(timeout=WAIT_S) == "HELLO, ADA!"


@pytest.mark.parametrize("form", FORMS)
async def test_agent_loop_waits_its_loop_delay(dagnats_env: DagnatsEnv, form: str) -> None:
    worker = dagnats.Worker()
    seen: list[tuple[int, float]] = []

    @worker.task()
    async def counter(ctx: dagnats.TaskContext, n: int) -> Any:
        seen.append((n, time.monotonic()))
        return dagnats.Continue(n + 1) if n < 1 else n

    dagnats_env.add_worker(worker)
    await dagnats_env.client.register(fixture(form, "agent-loop.json"))
    run = await dagnats_env.client.start("agent-loop", 0)
    assert await run.result(timeout=WAIT_S) == 1
    assert [n for n, _ in seen] == [0, 1]
    assert seen[1][1] - seen[0][1] >= 0.95  # loop_delay: 1000000000 ns


@pytest.mark.parametrize("form", FORMS)
async def test_map_step_runs_once_per_item(dagnats_env: DagnatsEnv, form: str) -> None:
    worker = dagnats.Worker()

    @worker.task("fetch-urls")
    async def fetch_urls(ctx: dagnats.TaskContext) -> list[str]:
        return ["a.png", "b.png", "c.png"]

    @worker.task("resize-image")
    async def resize(ctx: dagnats.TaskContext, url: str) -> str:
        return f"small-{url}"

    @worker.task("build-gallery")
    async def build(ctx: dagnats.TaskContext, images: list[str]) -> dict[str, Any]:
        return {"images": images, "count": len(images)}

    dagnats_env.add_worker(worker)
    await dagnats_env.client.register(fixture(form, "map-step.json"))
    run = await dagnats_env.client.start("image-pipeline")
    images = ["small-a.png", "small-b.png", "small-c.png"]
    assert await run.result(timeout=WAIT_S) == {"images": images, "count": 3}


@pytest.mark.parametrize("form", FORMS)
async def test_retry_errors_retries_then_hands_over(dagnats_env: DagnatsEnv, form: str) -> None:
    worker = dagnats.Worker()
    attempts: list[float] = []
    handled: list[Any] = []

    @worker.task()
    async def fetch(ctx: dagnats.TaskContext, url: str) -> str:
        attempts.append(time.monotonic())
        if url == "bad":
            raise dagnats.NonRetryableError("404 not found")
        if url == "flaky" and len(attempts) == 1:
            raise RuntimeError("connection reset")
        return f"<{url}>"

    @worker.task()
    async def process(ctx: dagnats.TaskContext, body: Any) -> Any:
        return {"processed": body}

    @worker.task("report-error")
    async def report_error(ctx: dagnats.TaskContext, info: dict[str, Any]) -> str:
        handled.append(info)
        return f"reported: {info['error']}"

    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    await client.register(fixture(form, "retry-errors.json"))
    flaky = await client.start("retry-errors", "flaky")
    assert await flaky.result(timeout=WAIT_S) == {"processed": "<flaky>"}
    # exponential from initial_delay 1000000000 ns: the first retry waits 1 s.
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.95
    assert (await flaky.status()).steps["report-error"].status == "skipped"

    bad = await client.start("retry-errors", "bad")
    assert await bad.result(timeout=WAIT_S) == {"processed": "reported: 404 not found"}
    # Go's on_failure input: {failed_step, error: "<message>"} (dagnats adds error_type).
    assert handled == [
        {"failed_step": "fetch", "error": "404 not found", "error_type": "NonRetryableError"}
    ]


def signals_worker(log: list[tuple[str, Any]]) -> dagnats.Worker:
    worker = dagnats.Worker()

    @worker.task()
    async def reserve(ctx: dagnats.TaskContext, order: dict[str, Any]) -> dict[str, Any]:
        log.append(("reserve", order["order_id"]))
        return {"order_id": str(order["order_id"]), "gift": order.get("gift", False)}

    @worker.task("gift-wrap")
    async def gift_wrap(ctx: dagnats.TaskContext, inp: Any) -> str:
        log.append(("gift-wrap", None))
        return "wrapped"

    @worker.task()
    async def ship(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> dict[str, Any]:
        log.append(("ship", inp))
        return {"shipped": True, "wrap": inp["gift-wrap"], "approval": inp["sign-off"]}

    return worker


async def test_signals_file_runs_the_go_waiting_forms(dagnats_env: DagnatsEnv) -> None:
    log: list[tuple[str, Any]] = []
    dagnats_env.add_worker(signals_worker(log))
    client = dagnats_env.client
    await client.register(fixture("go", "signals.json"))
    requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=8)

    async def on_request(msg: Any) -> None:
        await requests.put(json.loads(msg.data))

    sub = await dagnats_env.nc.subscribe("approvals.orders", cb=on_request)
    try:
        past_ms = int((time.time() - 3600) * 1000)  # a past instant: the sleep wakes at once
        order = {"order_id": 123, "ship_after": past_ms}
        run = await client.start("order-signals", order)
        # idempotency_key "order_id": the same order is the same run (24 h).
        again = await client.start("order-signals", {"order_id": 123, "ship_after": 0})
        assert again.run_id == run.run_id
        await wait_event(run, ev.STEP_WAIT_STARTED, step_id="paid")
        # match right = step.reserve.output.order_id ("123"); the event's 123 is compared
        # as a string, so it matches.
        await client.publish_event("payment.received", {"order_id": 123})
        request = await asyncio.wait_for(requests.get(), timeout=WAIT_S)
        assert request["run_id"] == run.run_id and request["step_id"] == "sign-off"
        assert request["subject"] == "approvals.orders"
        assert request["description"] == "ship the order?"
        assert request["metadata"] == {"team": "warehouse"}
        await client.approve(request["token"], {"by": "ops"})
        out = await run.result(timeout=WAIT_S)
    finally:
        await sub.unsubscribe()
    assert out["shipped"] is True and out["wrap"] is None  # gift == false: skipped
    state = await run.status()
    assert state.steps["gift-wrap"].status == "skipped"
    assert state.steps["cool-off"].status == "completed"
    assert [name for name, _ in log] == ["reserve", "ship"]


async def test_signals_cancel_on_matches_as_strings(dagnats_env: DagnatsEnv) -> None:
    log: list[tuple[str, Any]] = []
    dagnats_env.add_worker(signals_worker(log))
    client = dagnats_env.client
    await client.register(fixture("go", "signals.json"))
    run = await client.start("order-signals", {"order_id": 456, "ship_after": 0})
    other = await client.start("order-signals", {"order_id": 789, "ship_after": 0})
    await wait_event(run, ev.STEP_WAIT_STARTED, step_id="paid")
    await client.publish_event("order.cancelled", {"order_id": "456"})
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=WAIT_S)
    assert (await other.status()).status == "running"  # 789 did not match
    await client.cancel(other.run_id)
