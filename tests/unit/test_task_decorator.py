"""Methodology: pure unit tests of decoration rules, outcome mapping and fake_context (no NATS)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from dagnats import Continue, NonRetryableError, RetryAfter, Task, TaskContext, Worker
from dagnats.testing import fake_context
from dagnats.testing.fake import MemoryBackend
from dagnats.worker import outcomes
from dagnats.worker.task import split_continue


class In(BaseModel):
    repo: str


class Out(BaseModel):
    n: int


# ---- decoration ---------------------------------------------------------------------


def test_name_defaults_to_function_and_types_are_read() -> None:
    w = Worker()

    @w.task()
    async def greet(ctx: TaskContext, name: str) -> str:
        return name

    @w.task("review-v2", timeout="10m", concurrency=2)
    def review(ctx: TaskContext, inp: In) -> Out:
        return Out(n=len(inp.repo))

    @w.task
    async def bare(ctx: TaskContext) -> None:
        return None

    assert isinstance(greet, Task)
    assert (greet.task_name, greet.input_type, greet.output_type) == ("greet", str, str)
    assert greet.is_async and greet.timeout_ns is None and greet.__name__ == "greet"
    assert (review.task_name, review.input_type, review.output_type) == ("review-v2", In, Out)
    assert not review.is_async
    assert review.timeout_ns == 600 * 10**9 and review.concurrency == 2
    assert (bare.task_name, bare.input_type, bare.takes_input) == ("bare", None, False)
    assert bare.output_type is type(None)
    assert set(w.tasks) == {"greet", "review-v2", "bare"}


def test_local_types_resolve_under_future_annotations() -> None:
    class LocalIn(BaseModel):  # defined inside a function: not in module globals
        x: int

    w = Worker()

    @w.task()
    async def local(ctx: TaskContext, inp: LocalIn) -> list[LocalIn]:
        return [inp]

    assert local.input_type is LocalIn
    assert local.output_type == list[LocalIn]


def test_awaitable_return_is_unwrapped_and_awaited() -> None:
    w = Worker()

    @w.task()
    def later(ctx: TaskContext) -> Awaitable[int]:
        return asyncio.sleep(0, result=1)

    assert later.output_type is int and later.is_async


def test_unannotated_input_is_any_and_timeouts_accept_seconds() -> None:
    w = Worker()

    @w.task(timeout=1.5)
    async def loose(ctx, data):  # type: ignore[no-untyped-def]
        return data

    @w.task(timeout=timedelta(minutes=1))
    async def td(ctx: TaskContext) -> None:
        return None

    assert loose.input_type is Any and loose.output_type is None
    assert loose.timeout_ns == 1_500_000_000 and td.timeout_ns == 60 * 10**9


@pytest.mark.parametrize("name", ["has.dot", "has space", "star*", "", "ünï"])
def test_bad_task_names_are_rejected(name: str) -> None:
    w = Worker()
    with pytest.raises(ValueError, match="invalid task name"):

        @w.task(name)
        async def f(ctx: TaskContext) -> None:
            return None


def test_duplicate_names_are_rejected() -> None:
    w = Worker()

    @w.task()
    async def same(ctx: TaskContext) -> None:
        return None

    with pytest.raises(ValueError, match="'same' is already registered"):

        @w.task("same")
        async def other(ctx: TaskContext) -> None:
            return None


def test_bad_signatures_are_type_errors() -> None:
    w = Worker()
    with pytest.raises(TypeError, match=r"must take \(ctx\) or \(ctx, input\)"):

        @w.task()
        async def nothing() -> None:
            return None

    with pytest.raises(TypeError, match=r"must take \(ctx\) or \(ctx, input\)"):

        @w.task()
        async def three(ctx: TaskContext, a: int, b: int) -> None:
            return None

    with pytest.raises(TypeError, match="keyword-only parameter 'flag'"):

        @w.task()
        async def kw(ctx: TaskContext, *, flag: bool) -> None:
            return None

    with pytest.raises(TypeError, match="needs a function"):
        w.task()(42)  # type: ignore[arg-type]


def test_bad_options_are_rejected() -> None:
    w = Worker()
    with pytest.raises(ValueError, match="invalid timeout"):
        w.task("t", timeout="soon")(lambda ctx: None)
    with pytest.raises(ValueError, match="concurrency of task"):
        w.task("c", concurrency=0)(lambda ctx: None)
    with pytest.raises(ValueError, match="concurrency must be"):
        Worker(concurrency=0)
    with pytest.raises(ValueError, match="invalid worker group"):
        Worker(groups=["gpu.big"])
    with pytest.raises(ValueError, match="serve_ungrouped=False"):
        Worker(serve_ungrouped=False)
    with pytest.raises(TypeError, match="groups must be a sequence"):
        Worker(groups="gpu")


def test_worker_url_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGNATS_NATS_URL", raising=False)
    assert Worker().nats_url == "nats://127.0.0.1:4222"
    monkeypatch.setenv("DAGNATS_NATS_URL", "nats://elsewhere:4333")
    assert Worker().nats_url == "nats://elsewhere:4333"
    assert Worker("nats://explicit:1").nats_url == "nats://explicit:1"


# ---- outcome mapping ----------------------------------------------------------------


def test_split_continue() -> None:
    assert split_continue(int | Continue[str]) == (int, str)
    assert split_continue(Continue[In]) == (None, In)
    assert split_continue(int) == (int, None)
    assert split_continue(Continue) == (None, None)


def test_exception_data() -> None:
    assert outcomes.exception_data(NonRetryableError("no")) == {
        "error": "no",
        "error_type": "NonRetryableError",
        "retryable": False,
    }
    data = outcomes.exception_data(RetryAfter(2.5))
    assert data["retryable"] is True and data["retry_after_ns"] == 2_500_000_000
    try:
        raise ValueError("x" * 10_000)
    except ValueError as exc:
        data = outcomes.exception_data(exc)
    assert data["error_type"] == "ValueError" and data["retryable"] is True
    assert len(data["traceback"].encode()) <= outcomes.MAX_TRACEBACK_BYTES


def test_validation_message_names_fields_and_caps_the_list() -> None:
    class Many(BaseModel):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        items: list[int]

    with pytest.raises(ValidationError) as info:
        Many.model_validate({"items": [1, "x"]})
    msg = outcomes.validation_message("t", info.value)
    assert msg.startswith("invalid input for task 't': input.a: Field required")
    assert msg.endswith("... and 2 more")


# ---- fake_context ---------------------------------------------------------------------


async def test_fake_context_checkpoints_signals_and_stream() -> None:
    ctx = fake_context({"x": 1}, run_id="r1", step_id="s1", attempt=2)
    assert (ctx.run_id, ctx.step_id, ctx.attempt, ctx.iteration, ctx.item) == (
        "r1",
        "s1",
        2,
        0,
        None,
    )
    assert ctx.input == {"x": 1} and ctx.idempotency_key == "r1.s1"
    assert await ctx.load_checkpoint() is None
    await ctx.checkpoint(Out(n=4))
    assert await ctx.load_checkpoint(Out) == Out(n=4)
    assert ctx.checkpoints == {"r1.s1": {"n": 4}}
    await ctx.heartbeat()
    assert ctx.heartbeats == 1
    await ctx.put_stream("a")
    await ctx.put_stream({"b": 2})
    assert ctx.streamed == ["a", {"b": 2}]
    with pytest.raises(ValueError, match="256 KiB"):
        await ctx.put_stream("x" * 300_000)
    with pytest.raises(TypeError, match="cannot be sent as JSON"):
        await ctx.put_stream(object())
    assert ctx.streamed == ["a", {"b": 2}]  # rejected chunks take no sequence number

    waiter = asyncio.create_task(ctx.wait_for_signal("go", timeout="2s"))
    await asyncio.sleep(0)
    await ctx.send_signal("r1", "go", [1, 2])
    assert await asyncio.wait_for(waiter, 2) == [1, 2]
    with pytest.raises(TimeoutError, match=r"signal 'never'.*50ms"):
        await ctx.wait_for_signal("never", timeout=0.05)
    with pytest.raises(ValueError, match="invalid signal name"):
        await ctx.send_signal("r1", "bad.name", None)
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        await ctx.checkpoint(object())


async def test_fake_context_preloads_and_map_items_have_own_checkpoints() -> None:
    shared = MemoryBackend()
    ctx = fake_context(checkpoint={"done": 2}, signals={"approval": "yes"})
    assert await ctx.load_checkpoint() == {"done": 2}
    assert await ctx.wait_for_signal("approval") == "yes"
    a = fake_context(item=0, backend=shared)
    b = fake_context(item=1, backend=shared)
    await a.checkpoint("a")
    assert await b.load_checkpoint() is None
    assert set(shared.checkpoints) == {"test-run.test-step.0"}


async def test_handlers_are_unit_testable_with_fake_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = Worker()

    @w.task()
    async def greet(ctx: TaskContext, name: str) -> str:
        ctx.logger.info("greeting %s", name)
        return f"Hello, {name}!"

    @w.task()
    def shout(ctx: TaskContext, inp: In) -> Out:
        return Out(n=len(inp.repo))

    with caplog.at_level(logging.INFO, logger="dagnats.task"):
        assert await greet(fake_context("Ada"), "Ada") == "Hello, Ada!"
    record = caplog.records[-1]
    assert record.getMessage() == "[test-run/test-step#1] greeting Ada"
    assert (record.run_id, record.step_id, record.attempt) == ("test-run", "test-step", 1)  # type: ignore[attr-defined]
    assert shout(fake_context(), In(repo="abc")) == Out(n=3)
