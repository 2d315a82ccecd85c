"""Register the child, run a checkout: ``python -m examples.sub_workflows.trigger``.

Needs ``dagnats serve`` and ``dagnats worker examples.sub_workflows.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio

import dagnats
from examples.sub_workflows.workflow import checkout, payment


async def main() -> None:
    async with await dagnats.Client.connect() as client:
        await client.register(payment)  # the child: started by name from the parent
        run = await client.start(checkout, {"customer": "Ada", "items": ["book", "lamp"]})
        print(f"run {run.run_id} started")
        print(await run.result(timeout=60))
        state = await run.status()
        child = state.steps["pay"].child_run_id
        print(f"child run {child}:", (await client.get_run(str(child))).status)


if __name__ == "__main__":
    asyncio.run(main())
