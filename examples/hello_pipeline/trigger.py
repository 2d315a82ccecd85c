"""Start a run and print its result: ``python -m examples.hello_pipeline.trigger World``.

Needs ``dagnats serve`` and the worker running (see README.md).

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import sys

import dagnats
from examples.hello_pipeline.workflow import workflow


async def main(name: str) -> None:
    async with await dagnats.Client.connect() as client:
        run = await client.start(workflow, name)
        print(f"run {run.run_id} started")
        print(await run.result(timeout=60))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "World"))
