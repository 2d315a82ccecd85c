"""Methodology: singleton workflows on a real nats-server through the public API: while a
run is active, ``skip`` answers a new start with that run (nothing new starts) and
``cancel`` cancels it and starts the new one; with a ``key`` this holds per key value only.
Once the active run ends, the next start is a new run again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S, wait_state


def gated_worker() -> tuple[dagnats.Worker, asyncio.Event, list[str]]:
    worker = dagnats.Worker()
    gate = asyncio.Event()
    started: list[str] = []

    @worker.task()
    async def hold(ctx: dagnats.TaskContext, inp: dict[str, Any]) -> str:
        started.append(inp["name"])
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return str(inp["name"])

    return worker, gate, started


async def running(env: DagnatsEnv, run: dagnats.RunHandle) -> None:
    await wait_state(env, run.run_id, lambda s: s.steps["hold"].status == "running")


async def cancelled_by(old: dagnats.RunHandle, new: dagnats.RunHandle) -> None:
    with pytest.raises(dagnats.RunCancelledError):
        await old.result(timeout=WAIT_S)
    state = await old.status()
    assert state.error is not None
    assert f"replaced by run {new.run_id}" in state.error.message


@pytest.mark.parametrize("key", [None, "customer"])
async def test_skip_answers_with_the_active_run(dagnats_env: DagnatsEnv, key: str | None) -> None:
    worker, gate, started = gated_worker()
    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("only-one", singleton={"mode": "skip", "key": key})
    wf.step("hold")
    client = dagnats_env.client
    first = await client.start(wf, {"name": "first", "customer": "ada"})
    await running(dagnats_env, first)
    again = await client.start(wf, {"name": "again", "customer": "ada"})
    assert again.run_id == first.run_id and again.duplicate
    other = await client.start(wf, {"name": "other", "customer": "bob"})
    if key is None:
        assert other.run_id == first.run_id  # one active run for the whole workflow
    else:
        assert other.run_id != first.run_id  # bob's scope is free
        await running(dagnats_env, other)
    gate.set()
    assert await first.result(timeout=WAIT_S) == "first"
    assert "again" not in started
    later = await client.start(wf, {"name": "later", "customer": "ada"})
    assert later.run_id != first.run_id and not later.duplicate
    assert await later.result(timeout=WAIT_S) == "later"


@pytest.mark.parametrize("key", [None, "input.customer"])
async def test_cancel_replaces_the_active_run(dagnats_env: DagnatsEnv, key: str | None) -> None:
    worker, gate, _ = gated_worker()
    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("latest-wins", singleton={"mode": "cancel", "key": key})
    wf.step("hold")
    client = dagnats_env.client
    first = await client.start(wf, {"name": "first", "customer": "ada"})
    await running(dagnats_env, first)
    bob = await client.start(wf, {"name": "bob", "customer": "bob"})
    if key is None:
        await cancelled_by(first, bob)
        gate.set()
        assert await bob.result(timeout=WAIT_S) == "bob"
        return
    await running(dagnats_env, bob)  # another key value: both run
    second = await client.start(wf, {"name": "second", "customer": "ada"})
    assert second.run_id != first.run_id
    await cancelled_by(first, second)
    gate.set()
    assert await second.result(timeout=WAIT_S) == "second"
    assert await bob.result(timeout=WAIT_S) == "bob"
    assert (await bob.status()).status == "completed"
