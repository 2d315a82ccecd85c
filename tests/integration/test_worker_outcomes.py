"""Methodology: real Worker + nats-server; publish tasks as the engine, read history events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from pydantic import BaseModel

from dagnats import Continue, NonRetryableError, RetryAfter, TaskContext, Worker, protocol
from dagnats._nats.payloads import Payloads, is_ref
from dagnats._nats.types import NatsClient
from dagnats.server import EmbeddedNats
from tests.integration.worker_harness import WAIT_S, history, publish_task, running, task_message


class ReviewIn(BaseModel):
    repo: str
    branch: str


class ReviewOut(BaseModel):
    issues: int
    report: str


class Unserialisable:
    pass


def make_worker(url: str, *, report_started_after_s: float = 0.0) -> Worker:
    worker = Worker(
        url, name="w-outcomes", concurrency=8, report_started_after_s=report_started_after_s
    )

    @worker.task()
    async def greet(ctx: TaskContext, name: str) -> str:
        return f"Hello, {name or 'World'}!"

    @worker.task("review")
    def review(ctx: TaskContext, inp: ReviewIn) -> ReviewOut:
        return ReviewOut(issues=len(inp.branch), report=f"{inp.repo}@{inp.branch}")

    @worker.task()
    async def no_input(ctx: TaskContext) -> dict[str, Any]:
        return {"raw": ctx.input, "attempt": ctx.attempt, "item": ctx.item}

    @worker.task()
    async def boom(ctx: TaskContext, what: str) -> None:
        if what == "final":
            raise NonRetryableError("card declined")
        if what == "later":
            raise RetryAfter("1m30s", "rate limited")
        raise KeyError(what)

    @worker.task()
    async def agent(ctx: TaskContext, n: int) -> int | Continue[int]:
        return Continue(n + 1) if n < 3 else n

    @worker.task()
    async def odd_output(ctx: TaskContext) -> Any:
        return Unserialisable()

    @worker.task()
    async def huge(ctx: TaskContext) -> str:
        return "x" * 1_100_000

    @worker.task(timeout="200ms")
    async def sleepy(ctx: TaskContext, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    @worker.task()
    def sync_sleepy(ctx: TaskContext, seconds: float) -> str:
        time.sleep(seconds)
        return "woke"

    return worker


async def test_typed_inputs_and_outputs(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    async with running(worker), history(nc) as h:
        await publish_task(nc, greet := task_message("greet", "Ada"))
        ev = await h.next("step.completed")
        assert (ev.run_id, ev.data) == (greet.run_id, {"output": "Hello, Ada!"})
        assert (ev.step_id, ev.attempt, ev.iteration) == ("s", 1, 0)

        await publish_task(nc, task_message("review", {"repo": "dagnats", "branch": "main"}))
        ev = await h.next("step.completed")
        assert ev.data == {"output": {"issues": 4, "report": "dagnats@main"}}

        await publish_task(nc, task_message("no_input", [1, 2], attempt=2, item=7))
        ev = await h.next("step.completed")
        assert ev.data == {"output": {"raw": [1, 2], "attempt": 2, "item": 7}}
        assert (ev.attempt, ev.item) == (2, 7)  # every result event carries its identity
    assert worker.stats.completed == 3


async def test_started_event_and_dedup_ids(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    tm = task_message("greet", "Ada")
    async with running(worker), history(nc, tm.run_id) as h:
        await publish_task(nc, tm)
        started, sh = await h.next_with_headers()
        result, rh = await h.next_with_headers()
    assert started.type == "step.started"
    assert started.data["delivery"] == 1
    assert started.data["worker"] == worker.id
    assert sh["Nats-Msg-Id"] == f"{tm.dedup_id}.started"
    assert result.type == "step.completed"
    assert rh["Nats-Msg-Id"] == f"{tm.dedup_id}.result"


async def test_quick_handlers_report_no_started_event(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    # Below the threshold a task costs the engine one event; above it, "running" shows.
    worker = make_worker(nats_server.url, report_started_after_s=5.0)
    tm = task_message("greet", "Ada")
    async with running(worker), history(nc, tm.run_id) as h:
        await publish_task(nc, tm)
        first = await h.next()
    assert first.type == "step.completed"


async def test_invalid_input_fails_without_retry_naming_fields(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    async with running(worker), history(nc) as h:
        await publish_task(nc, task_message("review", {"branch": 5}))
        ev = await h.next("step.failed")
        await publish_task(nc, task_message("greet", {"not": "a string"}))
        ev2 = await h.next("step.failed")
    assert ev.data["retryable"] is False
    assert ev.data["error_type"] == "InputValidationError"
    assert "input.repo: Field required" in ev.data["error"]
    assert "input.branch: Input should be a valid string" in ev.data["error"]
    assert "'review'" in ev.data["error"]
    assert (
        ev2.data["retryable"] is False
        and "input: Input should be a valid string" in (ev2.data["error"])
    )
    info = await nc.jetstream().consumer_info(protocol.TASK_STREAM, "task-review")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # acked: not redelivered


async def test_exceptions_map_to_retryable_or_final_failures(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    async with running(worker), history(nc) as h:
        for what in ("final", "later", "other"):
            await publish_task(nc, task_message("boom", what))
            ev = await h.next("step.failed")
            if what == "final":
                assert ev.data == {
                    "error": "card declined",
                    "error_type": "NonRetryableError",
                    "retryable": False,
                }
            elif what == "later":
                assert ev.data["retryable"] is True
                assert ev.data["retry_after_ns"] == 90 * 10**9
                assert ev.data["error"] == "rate limited"
            else:
                assert ev.data["retryable"] is True
                assert ev.data["error_type"] == "KeyError"
                assert ev.data["error"] == "'other'"
                assert "raise KeyError(what)" in ev.data["traceback"]
                assert len(ev.data["traceback"].encode()) <= 4096
    assert worker.stats.failed == 3


async def test_continue_unserialisable_and_large_output(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    async with running(worker), history(nc) as h:
        await publish_task(nc, task_message("agent", 1))
        ev = await h.next("step.continue", "step.completed")
        assert (ev.type, ev.data) == ("step.continue", {"value": 2})
        await publish_task(nc, task_message("agent", 3, iteration=2))
        ev = await h.next("step.continue", "step.completed")
        assert (ev.type, ev.data, ev.iteration) == ("step.completed", {"output": 3}, 2)
        await publish_task(nc, task_message("odd_output"))
        ev = await h.next("step.failed")
        big = task_message("huge", step_id="big")
        await publish_task(nc, big)
        offloaded = await h.next("step.completed", "step.failed")
    assert ev.data["retryable"] is False
    assert ev.data["error_type"] == "SerializationError"
    assert "Unserialisable" in ev.data["error"]
    # Above 256 KiB the output goes to the object store; the event carries a reference.
    ref = offloaded.data["output"]
    assert is_ref(ref) and ref["$dagnats_ref"] == f"{big.run_id}/big/1.0/output"
    assert await Payloads(nc.jetstream()).resolve(ref) == "x" * 1_100_000
    assert (worker.stats.continued, worker.stats.failed) == (1, 1)


async def test_input_by_reference_is_resolved(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    payloads = Payloads(nc.jetstream())
    repo = "r" * 300_000
    ref = await payloads.offload("run-x/prev/1.0/output", {"repo": repo, "branch": "main"})
    assert is_ref(ref)
    async with running(worker), history(nc) as h:
        await publish_task(nc, task_message("review", ref))
        ev = await h.next("step.completed", "step.failed")
        await publish_task(nc, task_message("review", {"$dagnats_ref": "gone", "size": 3}))
        missing = await h.next("step.completed", "step.failed")
    output = await payloads.resolve(ev.data["output"])  # large in, large out
    assert output == {"issues": 4, "report": f"{repo}@main"}
    assert missing.data["error_type"] == "PayloadError" and missing.data["retryable"] is True


async def test_timeouts_cancel_the_handler(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    async with running(worker), history(nc) as h:
        # The task's own timeout (200ms) applies when the message carries none.
        await publish_task(nc, task_message("sleepy", 5, step_id="nap"))
        ev = await h.next("step.failed", "step.completed")
        assert ev.data == {
            "error": "step 'nap' exceeded its timeout of 200ms",
            "error_type": "TimeoutError",
            "retryable": True,
        }
        # The message's deadline wins over the task's.
        await publish_task(nc, task_message("sleepy", 0.4, timeout_ns=2 * 10**9))
        ev = await h.next("step.failed", "step.completed")
        assert ev.data == {"output": "woke"}
        # A sync handler cannot be killed: the worker stops waiting and reports.
        started = time.monotonic()
        await publish_task(nc, task_message("sync_sleepy", 1.5, timeout_ns=300_000_000))
        ev = await h.next("step.failed", "step.completed")
        assert ev.data["error_type"] == "TimeoutError"
        assert time.monotonic() - started < 1.2


async def test_sync_handler_runs_in_a_thread(nats_server: EmbeddedNats, nc: NatsClient) -> None:
    worker = make_worker(nats_server.url)
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with running(worker), history(nc) as h:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        for _ in range(2):  # two at once: they overlap in two threads
            await publish_task(nc, task_message("sync_sleepy", 0.6))
        t0 = time.monotonic()
        evs = await h.results(2)
        elapsed = time.monotonic() - t0
        stop.set()
        await asyncio.wait_for(tick, WAIT_S)
    assert [e.data for e in evs] == [{"output": "woke"}] * 2
    assert elapsed < 1.1  # ran concurrently, not one after the other
    assert max(gaps) < 0.3  # the event loop kept running while the threads slept


async def test_poison_messages_are_acked_and_the_loop_survives(
    nats_server: EmbeddedNats, nc: NatsClient
) -> None:
    worker = make_worker(nats_server.url)
    js = nc.jetstream()
    async with running(worker), history(nc) as h:
        await js.publish("task.greet", b"not json at all")
        await js.publish("task.greet", json.dumps({"run_id": "x"}).encode())
        await publish_task(nc, task_message("greet", "still here"))
        ev = await h.next("step.completed")
        assert ev.data == {"output": "Hello, still here!"}
    assert worker.stats.poison == 2
    info = await js.consumer_info(protocol.TASK_STREAM, "task-greet")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_the_task_stays_callable(nats_server: EmbeddedNats) -> None:
    from dagnats.testing import fake_context

    worker = make_worker(nats_server.url)
    greet = worker.tasks["greet"]
    assert await greet(fake_context("Ada"), "Ada") == "Hello, Ada!"
    review = worker.tasks["review"]
    out = review(fake_context(), ReviewIn(repo="r", branch="dev"))
    assert out == ReviewOut(issues=3, report="r@dev")
