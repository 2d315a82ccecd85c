"""Checkout (the parent) and payment (the child) tasks.

Run with: ``dagnats worker examples.sub_workflows.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="sub-workflows-worker")

PRICES = {"book": 12, "pen": 2, "lamp": 30}


class Cart(BaseModel):
    customer: str
    items: list[str]
    card: str = "4242"


class Bill(BaseModel):
    customer: str
    total: int
    card: str


class Authorization(BaseModel):
    bill: Bill
    auth_code: str


class Payment(BaseModel):
    customer: str
    total: int
    auth_code: str
    captured: bool


# --- the parent: checkout ---


@worker.task()
async def price_cart(ctx: dagnats.TaskContext, cart: Cart) -> Bill:
    return Bill(customer=cart.customer, total=sum(PRICES[i] for i in cart.items), card=cart.card)


@worker.task()
async def send_receipt(ctx: dagnats.TaskContext, payment: Payment) -> str:
    return f"receipt for {payment.customer}: {payment.total} EUR ({payment.auth_code})"


# --- the child: payment ---


@worker.task()
async def authorize(ctx: dagnats.TaskContext, bill: Bill) -> Authorization:
    if bill.card == "0000":
        raise dagnats.NonRetryableError("card refused by the issuer")
    # ctx.run_id is the child's own run id: "<parent run>-<step>-<attempt>".
    return Authorization(bill=bill, auth_code=f"AUTH-{bill.total}")


@worker.task()
async def capture(ctx: dagnats.TaskContext, auth: Authorization) -> Payment:
    return Payment(
        customer=auth.bill.customer, total=auth.bill.total, auth_code=auth.auth_code, captured=True
    )
