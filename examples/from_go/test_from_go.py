"""Methodology: a Go-serialised file checked offline, run on a real nats-server through the
pytest plugin's ``dagnats_env``, and written back in Go's form unchanged."""

from __future__ import annotations

from pathlib import Path

import dagnats
from dagnats.dag.definition.rules import definition_problems, load_definition
from dagnats.testing import DagnatsEnv
from examples.from_go.worker import worker

FILE = Path(__file__).parent / "order.go.json"


def test_the_go_file_is_valid_and_round_trips() -> None:
    assert definition_problems(FILE.read_bytes()) == []
    wf = dagnats.Workflow.from_json(FILE.read_text())
    assert load_definition(wf.to_dict(format="go")) == wf.to_definition()


async def test_the_go_file_runs(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    await client.register(FILE.read_text())
    big = await client.start("order-from-go", {"order_id": "A1", "prices": [80, 70]})
    assert await big.result(timeout=15) == {"order_id": "A1", "due": 135.0}
    small = await client.start("order-from-go", {"order_id": "B2", "prices": [20]})
    assert await small.result(timeout=15) == {"order_id": "B2", "due": 20.0}
    assert (await small.status()).steps["discount"].status == "skipped"
    bad = await client.start("order-from-go", {"order_id": "C3", "prices": [-5]})
    assert await bad.result(timeout=15) == "invoice failed: negative total -5"
    # idempotency_key "order_id": the same order is the same run.
    again = await client.start("order-from-go", {"order_id": "A1", "prices": [1]})
    assert again.run_id == big.run_id
