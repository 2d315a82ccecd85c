"""Book a trip with a declined card, both ways: ``python -m examples.saga.trigger``.

Needs ``dagnats serve`` and ``dagnats worker examples.saga.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio

import dagnats
from examples.saga.worker import DECLINED_CARD
from examples.saga.workflow import booking_saga, booking_with_fallback

TRIP = {"traveller": "Ada", "flight": "LH123", "hotel": "Ritz", "card": DECLINED_CARD}


async def main() -> None:
    async with await dagnats.Client.connect() as client:
        run = await client.start(booking_saga, TRIP)
        try:
            await run.result(timeout=60)
        except dagnats.RunFailedError as exc:
            print(f"saga: {exc.status}: {exc.error}")  # compensated: card ... was declined
        async for event in run.events():
            if event.type.startswith("compensate."):
                print(f"  {event.type} {event.data}")

        run = await client.start(booking_with_fallback, TRIP)
        print("fallback:", await run.result(timeout=60))


if __name__ == "__main__":
    asyncio.run(main())
