"""Index a site and print the summary: ``python -m examples.map_fanout.trigger docs.example``.

Needs ``dagnats serve`` and ``dagnats worker examples.map_fanout.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import sys

import dagnats
from examples.map_fanout.workflow import workflow


async def main(site: str) -> None:
    async with await dagnats.Client.connect() as client:
        run = await client.start(workflow, site)
        print(f"run {run.run_id} started")
        print(await run.result(timeout=60))
        state = await run.status()
        print("fetched:", state.steps["fetch"].output)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "docs.example"))
