"""Python handlers for two files as the Go DagNats writes them: an order pipeline
(``checkout.go.json``, workflow ``shop.order.v2``) that charges the order through a payment
sub-workflow (``payment.go.json``, ``shop.payment.v1``). Names and step ids keep Go's dots.

Run it (a server on nats://127.0.0.1:4222, e.g. ``dagnats serve``)::

    dagnats workflow validate examples/from_go/payment.go.json
    dagnats workflow validate examples/from_go/checkout.go.json
    dagnats workflow register examples/from_go/payment.go.json
    dagnats workflow register examples/from_go/checkout.go.json
    dagnats worker examples.from_go.checkout_worker:worker
    dagnats run start shop.order.v2 '{"order_id": "A1", "items": [{"price": 30, "qty": 2}]}' -w

The payment's result flows back as the ``payment.charge`` step's output. A total over
:data:`CARD_LIMIT` is declined: the payment run fails, so ``payment.charge`` fails and its
``on_failure`` handler ``order.alert`` stands in for it (its output replaces the step's),
and ``order.confirm`` records the order as unpaid. A total of :data:`CAPTURE_FAILS_AT`
passes authorisation and fails capture: the payment's saga voids the authorisation
(``compensate``) before the order learns that the payment failed.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from typing import Any

import dagnats

CARD_LIMIT = 1000
CAPTURE_FAILS_AT = 13

worker = dagnats.Worker()
voided: list[dict[str, Any]] = []
"""What ``void`` was handed, in order (the example's test reads it)."""


@worker.task()
async def quote(ctx: dagnats.TaskContext, order: dict[str, Any]) -> dict[str, Any]:
    total = sum(item["price"] * item.get("qty", 1) for item in order["items"])
    return {"order_id": order["order_id"], "total": total}


@worker.task()
async def authorize(ctx: dagnats.TaskContext, charge: dict[str, Any]) -> dict[str, Any]:
    # The sub-workflow's input is the parent step's input: the quote's output.
    if charge["total"] > CARD_LIMIT:
        raise dagnats.NonRetryableError(f"card declined: {charge['total']} > {CARD_LIMIT}")
    provider = ctx.metadata.get("provider", "?")  # the step's Go metadata
    return {"auth_id": f"{provider}-{charge['order_id']}", "amount": charge["total"]}


@worker.task()
async def capture(ctx: dagnats.TaskContext, auth: dict[str, Any]) -> dict[str, Any]:
    if auth["amount"] == CAPTURE_FAILS_AT:
        raise dagnats.NonRetryableError(f"capture refused for {auth['auth_id']}")
    return {"payment_id": f"pay-{auth['auth_id']}", "captured": auth["amount"]}


@worker.task()
async def void(ctx: dagnats.TaskContext, saga: dict[str, Any]) -> str:
    # Go's compensate input: original_step, original_output, trigger_step, trigger_error.
    voided.append(saga)
    return f"voided {saga['original_output']['auth_id']}"


@worker.task()
async def confirm(ctx: dagnats.TaskContext, parts: dict[str, Any]) -> dict[str, Any]:
    # Several dependencies: {dep_id: output}, keyed by the dotted step ids.
    payment = parts["payment.charge"]
    if "payment_id" not in payment:  # order.alert's output: the payment failed
        return {
            "order_id": parts["order.quote"]["order_id"],
            "status": "payment_failed",
            "reason": payment["error"],
        }
    return {
        "order_id": parts["order.quote"]["order_id"],
        "payment_id": payment["payment_id"],
        "charged": payment["captured"],
        "status": "confirmed",
    }


@worker.task()
async def alert(ctx: dagnats.TaskContext, failure: dict[str, Any]) -> dict[str, Any]:
    # Go's on_failure input: {"failed_step": "<id>", "error": "<message>"}.
    ctx.logger.warning("%s failed: %s", failure["failed_step"], failure["error"])
    return {"failed_step": failure["failed_step"], "error": failure["error"]}
