"""Start the planner pipeline and print what the plan added and the review's verdict.

``python -m examples.planner_pipeline.trigger``. Needs ``dagnats serve`` and the worker::

    dagnats worker examples.planner_pipeline.worker:worker

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dagnats
from examples.planner_pipeline.workflow import workflow

ISSUE = {"title": "Add a slugify helper", "files": ["blog/slug.py", "blog/urls.py"]}


async def planned_steps(run: dagnats.RunHandle) -> list[str]:
    """The step ids the planner added (from its ``planner.materialized`` record)."""
    async for event in run.events():
        if event.type == "planner.materialized":
            return list(event.data["steps"])
    return []


async def main(url: str = "nats://127.0.0.1:4222") -> dict[str, Any]:
    async with await dagnats.Client.connect(url) as client:
        await client.register(workflow)
        run = await client.start(workflow.name, ISSUE)
        result: dict[str, Any] = await run.result(timeout=60)
        print("planned:", ", ".join(await planned_steps(run)))
        print("review:", result)
        return result


if __name__ == "__main__":
    asyncio.run(main())
