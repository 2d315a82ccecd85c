"""Start an order and pay it, then start a review and signal it.

``python -m examples.events_and_signals.trigger``. Needs ``dagnats serve`` and
``dagnats worker examples.events_and_signals.worker:worker``. From a shell, the same event is
``dagnats event publish payment.received '{"order_id": "A-1", ...}'`` and the same signal
``dagnats run signal RUN_ID review '{"reviewer": "ada", "verdict": "approved"}'``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio

import dagnats
from examples.events_and_signals.workflow import document_review, order_fulfilment


async def main() -> None:
    async with await dagnats.Client.connect() as client:
        run = await client.start(order_fulfilment, {"order_id": "A-1", "amount": 42})
        async for event in run.events(follow=True, timeout=60):
            if event.type == "step.wait.started":
                break
        await client.publish_event(
            "payment.received", {"order_id": "A-1", "amount": 42, "method": "card"}
        )
        print(await run.result(timeout=60))

        run = await client.start(document_review, {"document": "design.md"})
        await run.signal("review", {"reviewer": "ada", "verdict": "approved"})
        print(await run.result(timeout=60))


if __name__ == "__main__":
    asyncio.run(main())
