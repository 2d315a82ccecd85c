"""Methodology: both booking workflows run end to end on a real nats-server
(``dagnats_env``) with a card that is declined for good: the saga must run the
compensators in reverse completion order and end ``compensated``; the on_failure variant
must mark the step ``recovered`` and complete with the handler's output. A good card checks
the happy path. Every wait is bounded."""

from __future__ import annotations

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from examples.saga.worker import DECLINED_CARD, worker
from examples.saga.workflow import booking_saga, booking_with_fallback

TRIP = {"traveller": "Ada", "flight": "LH123", "hotel": "Ritz", "card": "4242-4242-4242-4242"}
DECLINED = {**TRIP, "card": DECLINED_CARD}


async def test_declined_card_is_compensated_in_reverse_order(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(booking_saga, DECLINED)
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=20)
    assert info.value.status == "compensated"
    assert info.value.step_id == "charge-card"
    assert "declined" in str(info.value)

    events = [e async for e in run.events()]
    undo_order = [e.data["step"] for e in events if e.type == "compensate.step"]
    assert undo_order == ["reserve-hotel", "reserve-flight"]
    assert events[-1].type == "workflow.compensated"
    state = await run.status()
    assert state.status == "compensated"
    steps = {sid: s.status for sid, s in state.steps.items()}
    assert steps == {
        "reserve-flight": "completed",
        "reserve-hotel": "completed",
        "charge-card": "failed",
        "cancel-flight": "completed",
        "cancel-hotel": "completed",
    }
    # A NonRetryableError is not retried, whatever the retry policy allows.
    assert state.steps["charge-card"].attempts == 1
    hotel_ref = state.steps["reserve-hotel"].output["hotel_ref"]
    assert state.steps["cancel-hotel"].output == {"cancelled": hotel_ref}


async def test_good_card_needs_no_compensation(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(booking_saga, TRIP)
    receipt = await run.result(timeout=20)
    assert receipt["paid"] is True and receipt["hotel_ref"] == "HT-Ritz"
    state = await run.status()
    assert state.steps["cancel-flight"].status == "skipped"  # handlers never needed
    assert state.steps["cancel-hotel"].status == "skipped"


async def test_on_failure_recovers_and_the_run_completes(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(booking_with_fallback, DECLINED)
    out = await run.result(timeout=20)
    assert out == f"booked, invoice to follow (card {DECLINED_CARD} was declined)"
    state = await run.status()
    assert state.status == "completed"
    assert state.steps["charge-card"].status == "recovered"
    assert state.steps["charge-card"].output["paid"] is False
    assert state.steps["invoice-later"].status == "completed"
    types = [e.type async for e in run.events()]
    assert "step.recovered" in types
