"""Orders that wait for their payment event, and a review that waits for a signal.

Run with: ``dagnats worker examples.events_and_signals.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="events-signals-worker")


class Order(BaseModel):
    order_id: str
    amount: int


class Payment(BaseModel):
    """The data of a ``payment.received`` event (what ``publish_event`` sent)."""

    order_id: str
    amount: int
    method: str


class Review(BaseModel):
    """The data of the ``review`` signal."""

    reviewer: str
    verdict: str


class ReviewRequest(BaseModel):
    document: str


class Nudge(BaseModel):
    """Input of ``review_bot``: which run to signal."""

    run_id: str


@worker.task()
async def place_order(ctx: dagnats.TaskContext, order: Order) -> Order:
    ctx.logger.info("order %s placed, waiting for its payment", order.order_id)
    return order


@worker.task()
async def ship(ctx: dagnats.TaskContext, payment: dict[str, Any]) -> str:
    """Gets the event's data, or ``{"timeout": true}`` when the wait ran out of time."""
    if payment.get("timeout"):
        return "not paid in time: order released"
    paid = Payment.model_validate(payment)
    return f"shipping order {paid.order_id} (paid {paid.amount} by {paid.method})"


@worker.task(timeout="1m")
async def await_review(ctx: dagnats.TaskContext, req: ReviewRequest) -> str:
    # Blocks this handler (the worker keeps heartbeating it) until run.signal("review", ...)
    # arrives. A signal sent before the wait began is returned at once.
    review = Review.model_validate(await ctx.wait_for_signal("review", timeout="30s"))
    return f"{req.document}: {review.verdict} by {review.reviewer}"


@worker.task()
async def review_bot(ctx: dagnats.TaskContext, nudge: Nudge) -> str:
    """Signals *another* run: ``send_signal`` takes any run id."""
    await ctx.send_signal(nudge.run_id, "review", {"reviewer": "bot", "verdict": "approved"})
    return f"signalled {nudge.run_id}"
