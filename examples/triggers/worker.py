"""Workers of the trigger examples.

Run with: ``dagnats worker examples.triggers.worker:worker``. Every trigger-started run gets
the trigger envelope ``{trigger, source, workflow_id, timestamp, data}`` as its input.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import dagnats

worker = dagnats.Worker(name="trigger-examples")


@worker.task("collect-orders")
async def collect_orders(ctx: dagnats.TaskContext, envelope: dict[str, Any]) -> dict[str, Any]:
    """The webhook's JSON body is ``data``; a cron fire has ``data: null``."""
    orders = (envelope.get("data") or {}).get("orders", [])
    return {"why": envelope["trigger"], "at": envelope["timestamp"], "orders": orders}


@worker.task("summarise-orders")
async def summarise_orders(ctx: dagnats.TaskContext, collected: dict[str, Any]) -> str:
    total = sum(o.get("amount", 0) for o in collected["orders"])
    return f"{len(collected['orders'])} orders, {total} in total ({collected['why']})"


PRICES = {"tea": 3, "cake": 5}


@worker.task("price-quote")
async def price_quote(ctx: dagnats.TaskContext, envelope: dict[str, Any]) -> dict[str, Any]:
    """An HTTP trigger's ``data`` is the request: method, path, query, headers, body (base64)."""
    request = envelope["data"]
    body = json.loads(base64.b64decode(request["body"]) or b"{}")
    item = body.get("item", "")
    if item not in PRICES:
        raise dagnats.NonRetryableError(f"no price for {item!r}")
    return {"quote": {"item": item, "price": PRICES[item] * int(body.get("count", 1))}}


@worker.task("audit-quote")
async def audit_quote(ctx: dagnats.TaskContext, quote: dict[str, Any]) -> str:
    """Runs after the answer went out: the caller does not wait for it."""
    return f"quoted {quote['quote']['item']}"
