"""``payment`` (the child): authorize -> capture.

``checkout`` (the parent): price_cart -> pay (runs ``payment`` with the bill as its input and
gets its result as output) -> cool-off (a durable 200 ms sleep that passes its input on) ->
send_receipt.

The child must be registered before a parent run reaches its ``sub_workflow`` step.
"""

from __future__ import annotations

import dagnats
from examples.sub_workflows.worker import authorize, capture, price_cart, send_receipt

payment = dagnats.Workflow("payment", version="1.0")
auth = payment.step(authorize)
payment.step(capture, depends_on=[auth])

checkout = dagnats.Workflow("checkout", version="1.0")
priced = checkout.step(price_cart)
paid = checkout.sub_workflow(
    "pay",
    workflow="payment",  # a registered workflow's name
    depends_on=[priced],
    timeout="1m",  # bounds the whole child run: it is cancelled when this fires
)
cool = checkout.sleep("cool-off", duration="200ms", depends_on=[paid])
checkout.step(send_receipt, depends_on=[cool])
