"""The renewal's handlers: ``charge`` fails while the card network is down, ``notify``
writes the customer. Run from the repository root:
``dagnats worker examples.testing.worker:worker``.

``ledger`` records each charge by its idempotency key: a charge delivered twice (a lost
worker, an expired ack, a duplicate) is charged once, which is what the tests check.
"""

from __future__ import annotations

from typing import Any

import dagnats

worker = dagnats.Worker(name="renewals")

ledger: dict[str, int] = {}  # idempotency key -> amount charged (a stand-in for the bank)
outage = {"failures_left": 1}  # how many charge attempts still find the network down


@worker.task()
async def charge(ctx: dagnats.TaskContext) -> dict[str, Any]:
    if outage["failures_left"] > 0:
        outage["failures_left"] -= 1
        raise RuntimeError("card network unreachable")
    ledger.setdefault(ctx.idempotency_key, 42)  # the bank's own idempotency
    return {"charged": ledger[ctx.idempotency_key], "attempt": ctx.attempt}


@worker.task()
async def notify(ctx: dagnats.TaskContext, decision: Any) -> str:
    return f"renewed ({decision})"
