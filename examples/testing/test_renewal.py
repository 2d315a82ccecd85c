"""Methodology: the renewal workflow on a real nats-server with a virtual clock
(``@pytest.mark.dagnats(time_skipping=True)``): the week-long trial and the one-hour retry
pass in milliseconds, the approval is answered by the test (the clock never jumps over a
deadline a person could meet) or left to expire with ``env.sleep``. Each fault of
``env.faults`` is injected once and the guarantee it tests is asserted: the run completes
and the customer is charged exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

import dagnats
from dagnats.testing import DagnatsEnv, wait_event
from examples.testing import worker as handlers
from examples.testing.workflow import workflow

WEEK = timedelta(days=7)


@pytest.fixture(autouse=True)
def fresh_bank() -> Iterator[None]:
    handlers.ledger.clear()
    handlers.outage["failures_left"] = 1
    yield


async def approve_when_asked(env: DagnatsEnv, run: dagnats.RunHandle) -> None:
    asked = await wait_event(run, "step.approval.requested", timeout=10)
    await env.client.approve(asked.data["token"], "ok")


@pytest.mark.dagnats(time_skipping=True)
async def test_a_week_trial_and_an_hour_retry_in_well_under_a_second(
    dagnats_env: DagnatsEnv,
) -> None:
    dagnats_env.add_worker(handlers.worker)
    began, wall = dagnats_env.now(), time.perf_counter()
    run = await dagnats_env.client.start(workflow, None)
    await approve_when_asked(dagnats_env, run)
    assert await run.result(timeout=10) == "renewed (ok)"
    assert time.perf_counter() - wall < 1.0
    assert dagnats_env.now() - began >= WEEK + timedelta(hours=1)
    assert list(handlers.ledger.values()) == [42]


@pytest.mark.dagnats(time_skipping=True)
async def test_an_unanswered_sign_off_expires_after_a_day(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(handlers.worker)
    run = await dagnats_env.client.start(workflow, None)
    await wait_event(run, "step.approval.requested", timeout=10)
    await dagnats_env.sleep("25h")
    with pytest.raises(dagnats.RunFailedError, match="sign-off"):
        await run.result(timeout=10)


@pytest.mark.parametrize("fault", ["lose_worker", "expire_ack", "duplicate_delivery"])
@pytest.mark.dagnats(time_skipping=True)
async def test_a_charge_delivered_twice_is_charged_once(
    dagnats_env: DagnatsEnv, fault: str
) -> None:
    handlers.outage["failures_left"] = 0
    dagnats_env.add_worker(handlers.worker)
    faults = dagnats_env.faults
    if fault == "duplicate_delivery":
        await faults.duplicate_delivery("charge")
    else:
        getattr(faults, fault)("charge")
    run = await dagnats_env.client.start(workflow, None)
    await approve_when_asked(dagnats_env, run)
    assert await run.result(timeout=15) == "renewed (ok)"
    assert list(handlers.ledger.values()) == [42]


@pytest.mark.parametrize("after_events", [1, 3])
@pytest.mark.dagnats(time_skipping=True)
async def test_an_engine_crash_mid_renewal_changes_nothing(
    dagnats_env: DagnatsEnv, after_events: int
) -> None:
    dagnats_env.add_worker(handlers.worker)
    dagnats_env.faults.crash_engine(after_events=after_events)
    run = await dagnats_env.client.start(workflow, None)
    await approve_when_asked(dagnats_env, run)
    assert await run.result(timeout=20) == "renewed (ok)"
    assert dagnats_env.faults.crashes == 1
    assert list(handlers.ledger.values()) == [42]


@pytest.mark.dagnats(time_skipping=True)
async def test_a_killed_server_mid_trial_loses_nothing(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(handlers.worker)
    run = await dagnats_env.client.start(workflow, None)
    await wait_event(run, "step.sleep.started", step_id="trial", timeout=10)
    await dagnats_env.faults.kill_server()
    await approve_when_asked(dagnats_env, run)
    assert await run.result(timeout=20) == "renewed (ok)"
    assert list(handlers.ledger.values()) == [42]
