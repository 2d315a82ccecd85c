"""Methodology: parent and child run end to end on a real nats-server (``dagnats_env``):
the child's result becomes the parent step's output, the child run is a real run with its
own id and history, the sleep holds the run for at least its duration, and a child failure
fails the parent step. Every wait is bounded."""

from __future__ import annotations

import time

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from examples.sub_workflows.worker import worker
from examples.sub_workflows.workflow import checkout, payment


async def test_parent_runs_child_then_sleeps(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    await client.register(payment)
    started = time.monotonic()
    run = await client.start(checkout, {"customer": "Ada", "items": ["book", "lamp"]})
    assert await run.result(timeout=20) == "receipt for Ada: 42 EUR (AUTH-42)"
    assert time.monotonic() - started >= 0.2  # the cool-off sleep

    state = await run.status()
    pay = state.steps["pay"]
    assert pay.status == "completed"
    assert pay.output == {"customer": "Ada", "total": 42, "auth_code": "AUTH-42", "captured": True}
    assert pay.child_run_id == f"{run.run_id}-pay-1"
    child = await client.get_run(pay.child_run_id)
    assert child.workflow == "payment" and child.status == "completed"
    assert child.input == {"customer": "Ada", "total": 42, "card": "4242"}

    types = [e.type async for e in run.events()]
    for expected in ("step.child.started", "step.child.completed", "step.sleep.started"):
        assert expected in types
    # A sleep passes its input through.
    assert state.steps["cool-off"].output == pay.output


async def test_child_failure_fails_the_parent_step(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    await client.register(payment)
    run = await client.start(checkout, {"customer": "Bob", "items": ["pen"], "card": "0000"})
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=20)
    assert info.value.step_id == "pay"
    assert "card refused by the issuer" in str(info.value)
    state = await run.status()
    child = await client.get_run(str(state.steps["pay"].child_run_id))
    assert child.status == "failed"
    assert state.steps["send_receipt"].status == "cancelled"


async def test_unregistered_child_fails_the_step(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("checkout-orphan")
    wf.sub_workflow("pay", workflow="no-such-workflow")
    run = await dagnats_env.client.start(wf, {})
    with pytest.raises(dagnats.RunFailedError, match="not registered"):
        await run.result(timeout=20)
