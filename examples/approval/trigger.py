"""Start a deploy, wait for its approval token, then approve or reject it.

``python -m examples.approval.trigger approve`` (or ``reject``). Needs ``dagnats serve`` and
``dagnats worker examples.approval.worker:worker``. In real life the token goes to a person
(chat message, e-mail link) who answers with ``dagnats approve TOKEN DATA`` or
``dagnats reject TOKEN --reason TEXT``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import sys

import dagnats
from examples.approval.workflow import workflow


async def approval_token(run: dagnats.RunHandle, timeout: float = 60) -> str:
    """The token of the run's approval step, from its ``step.approval.requested`` event."""
    async for event in run.events(follow=True, timeout=timeout):
        if event.type == "step.approval.requested":
            token: str = event.data["token"]
            return token
    raise RuntimeError(f"run {run.run_id} ended without requesting an approval")


async def main(decision: str) -> None:
    async with await dagnats.Client.connect() as client:
        run = await client.start(workflow, {"service": "billing", "version": "2.4.1"})
        print(f"run {run.run_id} started; waiting for the approval request")
        token = await approval_token(run)
        print(f"approval token: {token}")
        if decision == "reject":
            await client.reject(token, "change freeze")
        else:
            await client.approve(token, {"approver": "ada", "ticket": "CHG-42"})
        try:
            print(await run.result(timeout=60))
        except dagnats.RunFailedError as exc:
            print(f"run {exc.status}: {exc.error}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "approve"))
