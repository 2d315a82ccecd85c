"""Workers for the hello pipeline.

Run with: ``dagnats worker examples.hello_pipeline.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import dagnats

worker = dagnats.Worker(name="hello-worker")


@worker.task(timeout="30s")
async def greet(ctx: dagnats.TaskContext, name: str) -> str:
    return f"Hello, {name or 'World'}!"


@worker.task()
async def uppercase(ctx: dagnats.TaskContext, text: str) -> str:
    return text.upper()


@worker.task()
def reverse(ctx: dagnats.TaskContext, text: str) -> str:
    # A sync handler: dagnats runs it in a thread so the event loop never blocks.
    return text[::-1]
