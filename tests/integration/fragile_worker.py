"""A worker process that hangs in its handler, to be SIGKILLed by test_worker_loss.py."""

from __future__ import annotations

import asyncio
import sys

import dagnats

worker = dagnats.Worker(ack_wait_s=1.0, name="fragile", report_started_after_s=0)


@worker.task()
async def fragile(ctx: dagnats.TaskContext, x: int) -> int:
    print(f"started attempt={ctx.attempt}", flush=True)
    await asyncio.Event().wait()  # the test kills this process while it waits here
    return x


if __name__ == "__main__":
    worker.nats_url = sys.argv[1]
    asyncio.run(worker.run())
