"""Start the research loop and print its answer: ``python -m examples.agent_loop.trigger``.

Needs ``dagnats serve`` and ``dagnats worker examples.agent_loop.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import sys

import dagnats
from examples.agent_loop.workflow import workflow


async def main(question: str) -> None:
    async with await dagnats.Client.connect() as client:
        run = await client.start(workflow, {"question": question, "crash_at_iteration": 1})
        print(f"run {run.run_id} started")
        async for event in run.events(follow=True, timeout=60):
            if event.type in ("step.continue", "step.failed", "step.retrying"):
                print(f"  {event.type} (iteration {event.iteration}, attempt {event.attempt})")
        print(await run.result(timeout=60))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "How does JetStream keep state?"))
