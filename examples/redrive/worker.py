"""Workers for the import pipeline: ``extract`` -> ``enrich`` -> ``load``.

``enrich`` calls a service that may be down: while the file named by ``REDRIVE_OUTAGE_FILE``
(default ``/tmp/dagnats-redrive-outage``) exists, it fails. ``calls`` counts each handler's
runs in this process, so the example can show what ran again after a retry.

Run with: ``dagnats worker examples.redrive.worker:worker``.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import dagnats

worker = dagnats.Worker(name="import-worker")
calls: Counter[str] = Counter()


def outage_file() -> Path:
    return Path(os.environ.get("REDRIVE_OUTAGE_FILE", "/tmp/dagnats-redrive-outage"))


@worker.task()
async def extract(ctx: dagnats.TaskContext, record_id: int) -> dict[str, int]:
    calls["extract"] += 1
    return {"id": record_id, "value": record_id * 7}


@worker.task()
async def enrich(ctx: dagnats.TaskContext, record: dict[str, int]) -> dict[str, int]:
    calls["enrich"] += 1
    if outage_file().exists():
        raise RuntimeError("enrichment service unavailable (outage)")
    return {**record, "score": record["value"] % 5}


@worker.task()
async def load(ctx: dagnats.TaskContext, record: dict[str, int]) -> str:
    calls["load"] += 1
    return f"loaded {record['id']} (score {record['score']})"
