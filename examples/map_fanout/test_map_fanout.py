"""Methodology: the fan-out run end to end on a real nats-server (``dagnats_env``): a
four-item list (results gathered in input order, each instance seeing its own ``ctx.item``),
an empty list (the map completes at once with ``[]`` and the gather still runs), and a list
over ``max_items``; every wait is bounded."""

from __future__ import annotations

import pytest

import dagnats
from dagnats.testing import DagnatsEnv
from examples.map_fanout.worker import Page, Summary, worker
from examples.map_fanout.workflow import workflow


async def test_fan_out_and_gather(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(workflow, "docs.example")
    summary = Summary.model_validate(await run.result(timeout=20))
    assert summary == Summary(pages=4, words=22, longest="https://docs.example/workers")

    state = await run.status()
    fetched = [Page.model_validate(p) for p in state.steps["fetch"].output]
    assert [p.url for p in fetched] == [
        "https://docs.example/",
        "https://docs.example/install",
        "https://docs.example/workers",
        "https://docs.example/faq",
    ]
    assert [p.item for p in fetched] == [0, 1, 2, 3]
    types = [e.type async for e in run.events()]
    assert types.count("step.map.started") == 1 and types.count("step.map.completed") == 1


async def test_empty_list(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(workflow, "empty.example")
    assert await run.result(timeout=20) == {"pages": 0, "words": 0, "longest": None}
    state = await run.status()
    assert state.steps["fetch"].status == "completed"
    assert state.steps["fetch"].output == []


async def test_too_many_items_fails_the_map(dagnats_env: DagnatsEnv) -> None:
    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("map-limit")
    pages = wf.step("list_pages")
    wf.map("fetch", task="fetch_page", depends_on=[pages], max_items=2)
    run = await dagnats_env.client.start(wf, "docs.example")
    with pytest.raises(dagnats.RunFailedError) as info:
        await run.result(timeout=20)
    assert info.value.step_id == "fetch"
    assert "max_items" in str(info.value)
