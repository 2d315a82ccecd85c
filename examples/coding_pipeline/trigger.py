"""Run the coding pipeline, print the model's streamed output, approve, print the merge.

``python -m examples.coding_pipeline.trigger [--in-browser]``: with ``--in-browser`` it
prints the run's page in the web console and waits for you to approve it there. Needs
``dagnats serve`` and both workers::

    dagnats worker examples.coding_pipeline.worker:worker
    dagnats worker examples.coding_pipeline.worker:gpu_worker

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import dagnats
from examples.coding_pipeline.workflow import workflow

ISSUE = {
    "repo": "acme/blog",
    "title": "Add a slugify helper",
    "body": "Titles like 'Hello, World!' should become 'hello-world'.",
}


async def start_streaming(
    client: dagnats.Client, issue: dict[str, Any], step: str = "code", timeout: float = 60
) -> tuple[dagnats.RunHandle, asyncio.Task[list[Any]]]:
    """Start a run with its stream of ``step`` already being read.

    Stream chunks travel on core NATS and are not stored: a watcher sees only what is sent
    after it subscribed. So we pick the run id ourselves, start reading, then start the run.
    """
    run_id = f"coding-{uuid.uuid4().hex}"
    watcher = client.run(run_id)

    async def read() -> list[Any]:
        chunks: list[Any] = []
        async for chunk in watcher.stream(step, timeout=timeout):
            print(chunk["text"], end="", flush=True)
            chunks.append(chunk)
        return chunks

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.05)  # let the reader subscribe before anything can be streamed
    run = await client.start(workflow, issue, run_id=run_id)
    return run, reader


async def approval_token(run: dagnats.RunHandle, timeout: float = 60) -> str:
    async for event in run.events(follow=True, timeout=timeout):
        if event.type == "step.approval.requested":
            token: str = event.data["token"]
            return token
    raise RuntimeError(f"run {run.run_id} ended without requesting an approval")


CONSOLE = "http://127.0.0.1:8080/console/"


async def main(in_browser: bool = False) -> None:
    async with await dagnats.Client.connect() as client:
        run, reader = await start_streaming(client, ISSUE)
        if in_browser:
            # Watch it in the web console and approve (or reject) it there.
            print(f"watch and approve it at {CONSOLE}#/runs/{run.run_id}")
            print(await run.result(timeout=3600))
            return
        token = await approval_token(run)
        chunks = await reader
        print(f"\n{len(chunks)} chunks streamed; approving with token {token[:8]}...")
        await client.approve(token, {"reviewer": "ada", "comment": "LGTM"})
        print(await run.result(timeout=60))


if __name__ == "__main__":
    asyncio.run(main(in_browser="--in-browser" in sys.argv[1:]))
