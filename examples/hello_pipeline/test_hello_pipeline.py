"""Methodology: the example run end to end on a real nats-server through the pytest plugin's
``dagnats_env`` fixture, plus its handlers called directly with a fake context."""

from __future__ import annotations

import json
from pathlib import Path

import dagnats
from dagnats.testing import DagnatsEnv, fake_context
from examples.hello_pipeline.worker import greet, reverse, uppercase, worker
from examples.hello_pipeline.workflow import workflow


async def test_pipeline_end_to_end(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(workflow, "World")
    assert await run.result(timeout=15) == "!DLROW ,OLLEH"


async def test_json_definition_matches_builder() -> None:
    text = (Path(__file__).parent / "pipeline.json").read_text()
    from_json = dagnats.Workflow.from_json(text).to_definition()
    built = workflow.to_definition()
    assert json.loads(text)["name"] == built.name == from_json.name
    for a, b in zip(from_json.steps, built.steps, strict=True):
        assert (a.id, a.task_name, a.depends_on, a.timeout, a.retry) == (
            b.id,
            b.task_name,
            b.depends_on,
            b.timeout,
            b.retry,
        )
    assert from_json.default_retry == built.default_retry


async def test_handlers_are_plain_callables() -> None:
    ctx = fake_context()
    assert await greet(ctx, "") == "Hello, World!"
    assert await uppercase(ctx, "abc") == "ABC"
    assert reverse(ctx, "abc") == "cba"
