"""Methodology: the deploy runs end to end on a real nats-server (``dagnats_env``); the
token is read from the run's own events as a client would, then approved (the deploy gets the
approver's data; the token cannot be used twice) or rejected (the run fails at the approval
step with the reason). Every wait is bounded."""

from __future__ import annotations

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from examples.approval.trigger import approval_token
from examples.approval.worker import worker
from examples.approval.workflow import workflow

REQUEST = {"service": "billing", "version": "2.4.1"}


async def test_approve(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    run = await client.start(workflow, REQUEST)
    token = await approval_token(run, timeout=20)
    # Nothing after the approval step has started. (The history, not ``run.status()``: the
    # snapshot is written behind the events and may lag them by a few milliseconds.)
    assert [e async for e in run.events() if e.step_id == "deploy"] == []

    await client.approve(token, {"approver": "ada", "ticket": "CHG-42"})
    out = await run.result(timeout=20)
    assert out.startswith("deployed billing@sha256:")
    assert out.endswith("(approved by ada, CHG-42)")
    state = await run.status()
    assert state.steps["approve"].output == {"approver": "ada", "ticket": "CHG-42"}
    with pytest.raises(dagnats.ApprovalError, match="already used"):
        await client.approve(token, {"approver": "mallory", "ticket": "x"})


async def test_reject(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    run = await client.start(workflow, REQUEST)
    token = await approval_token(run, timeout=20)
    await client.reject(token, "change freeze")
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=20)
    assert info.value.status == "failed"
    assert info.value.step_id == "approve"
    assert "rejected: change freeze" in str(info.value)
    state = await run.status()
    assert state.steps["deploy"].status == "cancelled"


async def test_approval_event_carries_the_message(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(workflow, REQUEST)
    await approval_token(run, timeout=20)
    requested = [e async for e in run.events() if e.type == "step.approval.requested"]
    assert len(requested) == 1
    assert requested[0].step_id == "approve"
    assert requested[0].data["message"] == "Deploy to production?"
    assert "expires_at" in requested[0].data
    await run.cancel()
    with pytest.raises(dagnats.RunCancelledError):
        await run.result(timeout=20)
