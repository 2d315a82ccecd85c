"""Methodology: the example's own functions run end to end on a real nats-server through
the pytest plugin's ``dagnats_env`` fixture, with the outage file in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagnats.testing import DagnatsEnv
from examples.redrive import worker as import_worker
from examples.redrive.trigger import RECORDS, import_batch, redrive, wait_all


async def test_outage_then_redrive(
    dagnats_env: DagnatsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = tmp_path / "outage"
    monkeypatch.setenv("REDRIVE_OUTAGE_FILE", str(outage))
    import_worker.calls.clear()
    dagnats_env.add_worker(import_worker.worker)
    client = dagnats_env.client
    outage.touch()
    run_ids = await import_batch(client)
    outcomes = await wait_all(client, run_ids)
    assert all("enrichment service unavailable" in o for o in outcomes.values())
    letters = await client.list_dead_letters()
    assert sorted(d.run_id or "" for d in letters) == sorted(run_ids)
    outage.unlink()
    handles = await redrive(client, run_ids)
    results = [await h.result(timeout=15) for h in handles]
    assert sorted(results) == [f"loaded {r} (score {r * 7 % 5})" for r in RECORDS]
    n = len(RECORDS)
    assert import_worker.calls == {"extract": n, "enrich": 4 * n, "load": n}
    assert await client.list_dead_letters() == []
