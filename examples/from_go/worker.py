"""Python handlers for a workflow file written by the Go DagNats (``order.go.json``).

Run: ``dagnats workflow validate examples/from_go/order.go.json`` (offline), then
``dagnats workflow register examples/from_go/order.go.json`` and
``dagnats worker examples.from_go.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from typing import Any

import dagnats

worker = dagnats.Worker()


@worker.task()
async def quote(ctx: dagnats.TaskContext, order: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": order["order_id"], "total": sum(order["prices"])}


@worker.task()
async def discount(ctx: dagnats.TaskContext, quoted: dict[str, Any]) -> dict[str, Any]:
    return {"percent": 10}


@worker.task()
async def invoice(ctx: dagnats.TaskContext, parts: dict[str, Any]) -> dict[str, Any]:
    # Several dependencies: {dep_id: output}; a skipped one hands on null.
    total = parts["quote"]["total"]
    percent = (parts["discount"] or {}).get("percent", 0)
    if total < 0:
        raise dagnats.NonRetryableError(f"negative total {total}")
    return {"order_id": parts["quote"]["order_id"], "due": total * (100 - percent) / 100}


@worker.task()
async def alert(ctx: dagnats.TaskContext, failure: dict[str, Any]) -> str:
    # Go's on_failure input: {"failed_step": "<id>", "error": "<message>"}.
    return f"{failure['failed_step']} failed: {failure['error']}"
