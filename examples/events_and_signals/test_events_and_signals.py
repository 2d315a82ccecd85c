"""Methodology: the three workflows run end to end on a real nats-server (``dagnats_env``).
Events: two concurrent orders each receive only the payment whose ``order_id`` matches their
own input (one event published after the wait began, one possibly before, which the
look-back catches), and a short wait that times out. Signals: one sent before the handler
waits, one sent by another run's task with ``ctx.send_signal``. Every wait is bounded."""

from __future__ import annotations

import asyncio

from dagnats.testing import DagnatsEnv
from examples.events_and_signals.worker import worker
from examples.events_and_signals.workflow import (
    document_review,
    order_fulfilment,
    order_workflow,
    review_bot_flow,
)


async def test_each_order_gets_its_own_payment(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    first = await client.start(order_fulfilment, {"order_id": "A-1", "amount": 10})
    second = await client.start(order_fulfilment, {"order_id": "B-2", "amount": 20})
    # Published right away, maybe before B-2's wait began: the 5 s look-back covers that.
    await client.publish_event(
        "payment.received", {"order_id": "B-2", "amount": 20, "method": "card"}
    )
    # An event for an order nobody waits for changes nothing.
    await client.publish_event("payment.received", {"order_id": "Z-9", "amount": 1, "method": "x"})

    async for event in first.events(follow=True, timeout=20):
        if event.type == "step.wait.started":
            assert event.data == {"event": "payment.received", "match": {"order_id": "A-1"}}
            break
    assert await second.result(timeout=20) == "shipping order B-2 (paid 20 by card)"
    # A-1 is still waiting: B-2's payment was not its own.
    assert [e async for e in first.events() if e.type == "step.wait.matched"] == []

    await client.publish_event(
        "payment.received", {"order_id": "A-1", "amount": 10, "method": "iban"}
    )
    assert await first.result(timeout=20) == "shipping order A-1 (paid 10 by iban)"
    state = await first.status()
    assert state.steps["payment"].output == {"order_id": "A-1", "amount": 10, "method": "iban"}


async def test_wait_times_out(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    wf = order_workflow("order-fulfilment-fast", payment_timeout="300ms")
    run = await dagnats_env.client.start(wf, {"order_id": "C-3", "amount": 5})
    assert await run.result(timeout=20) == "not paid in time: order released"
    types = [e.type async for e in run.events()]
    assert "step.wait.timeout" in types


async def test_signal_sent_before_the_wait_is_not_lost(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(document_review, {"document": "design.md"})
    await run.signal("review", {"reviewer": "ada", "verdict": "approved"})
    assert await run.result(timeout=20) == "design.md: approved by ada"


async def test_signal_sent_while_waiting_by_another_run(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    waiting = await client.start(document_review, {"document": "api.md"})
    async for event in waiting.events(follow=True, timeout=20):
        if event.type == "step.started":
            break
    await asyncio.sleep(0.1)  # let the handler reach wait_for_signal (not needed for correctness)
    bot = await client.start(review_bot_flow, {"run_id": waiting.run_id})
    assert await bot.result(timeout=20) == f"signalled {waiting.run_id}"
    assert await waiting.result(timeout=20) == "api.md: approved by bot"
