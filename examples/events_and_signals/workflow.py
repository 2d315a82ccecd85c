"""Three workflows.

``order-fulfilment``: place_order -> wait for ``payment.received`` whose ``order_id`` equals
the run input's ``order_id`` -> ship. Each run waits for its own order's payment.

``document-review``: a task that waits inside its handler for the run's ``review`` signal.

``review-bot``: a task that sends that signal to another run.
"""

from __future__ import annotations

import dagnats
from dagnats import Workflow
from examples.events_and_signals.worker import await_review, place_order, review_bot, ship


def order_workflow(name: str = "order-fulfilment", payment_timeout: str = "1h") -> Workflow:
    wf = dagnats.Workflow(name, version="1.0")
    placed = wf.step(place_order)
    paid = wf.wait_for_event(
        "payment",
        event="payment.received",
        # event field path -> path into the step input or the run input; all must be equal
        match={"order_id": "run.input.order_id"},
        timeout=payment_timeout,  # then the step completes with {"timeout": true}
        lookback="5s",  # an event published up to 5 s before the wait began still counts
        depends_on=[placed],
    )
    wf.step(ship, depends_on=[paid])
    return wf


order_fulfilment = order_workflow()

document_review = dagnats.Workflow("document-review", version="1.0")
document_review.step(await_review, timeout="1m")

review_bot_flow = dagnats.Workflow("review-bot", version="1.0")
review_bot_flow.step(review_bot)
