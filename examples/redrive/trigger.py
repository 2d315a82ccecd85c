"""Import a batch during an outage, then redrive it: ``python -m examples.redrive.trigger``.

Needs ``dagnats serve`` and the worker running (see README.md). The steps:

1. start the outage (create the outage file) and start 5 imports with ``start_many``;
2. every run fails at ``enrich``; its task lands in the dead-letter queue;
3. end the outage; replay one run from its dead letter and retry the rest in place:
   ``extract`` does not run again, ``enrich`` and ``load`` do.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import contextlib

import dagnats
from examples.redrive.worker import outage_file
from examples.redrive.workflow import workflow

RECORDS = [101, 102, 103, 104, 105]


async def import_batch(client: dagnats.Client) -> list[str]:
    """Start one run per record; the ids of the runs."""
    await client.register(workflow)
    results = await client.start_many(workflow.name, RECORDS)
    return [r.run_id for r in results if r.run_id is not None]


async def wait_all(client: dagnats.Client, run_ids: list[str]) -> dict[str, str]:
    """Each run's outcome: its output, or the error that ended it."""
    out: dict[str, str] = {}
    for run_id in run_ids:
        try:
            out[run_id] = str(await client.run(run_id).result(timeout=60))
        except dagnats.RunError as exc:
            out[run_id] = f"failed: {exc}"
    return out


async def redrive(client: dagnats.Client, run_ids: list[str]) -> list[dagnats.RunHandle]:
    """Replay the first run from its dead letter, retry the others in place."""
    first, *rest = run_ids
    letters = await client.list_dead_letters(run_id=first)
    handles = [await client.replay_dead_letter(letters[0].seq)]
    for run_id in rest:
        handles.append(await client.retry_run(run_id, reason="outage over"))
    return handles


async def main() -> None:
    outage = outage_file()
    outage.touch()
    try:
        async with await dagnats.Client.connect() as client:
            run_ids = await import_batch(client)
            for run_id, outcome in (await wait_all(client, run_ids)).items():
                print(f"{run_id}: {outcome}")
            outage.unlink()
            handles = await redrive(client, run_ids)
            for h in handles:
                print(f"{h.run_id}: {await h.result(timeout=60)}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            outage.unlink()


if __name__ == "__main__":
    asyncio.run(main())
