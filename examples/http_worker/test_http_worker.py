"""Methodology: the example on a real nats-server (the ``dagnats_env`` fixture) with the HTTP
API and its worker bridge on a free port: the Python step on a ``dagnats.Worker``, the
next on the plain-httpx worker in a thread; then a bad input failed for good by it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dagnats.errors import RunFailedError
from dagnats.server.bridge import SERVICE, Bridge, router
from dagnats.server.http import HttpGateway, Routes
from dagnats.testing import DagnatsEnv
from examples.http_worker import http_worker
from examples.http_worker.workflow import worker, workflow


@pytest.fixture
async def base_url(dagnats_env: DagnatsEnv) -> AsyncIterator[str]:
    bridge = Bridge(dagnats_env.nc)
    await bridge.start()
    gw = HttpGateway(dagnats_env.nc, port=0, routers=[Routes(router)], services={SERVICE: bridge})
    await gw.start()
    try:
        yield gw.url
    finally:
        await gw.stop()
        await bridge.stop()


async def test_a_step_in_python_and_a_step_over_http(
    dagnats_env: DagnatsEnv, base_url: str
) -> None:
    dagnats_env.add_worker(worker)
    served = asyncio.ensure_future(asyncio.to_thread(http_worker.serve, base_url, max_tasks=1))
    run = await dagnats_env.client.start(workflow, "The cat  saw THE dog and the bird")
    assert await run.result(timeout=20) == {"the": 3, "cat": 1, "saw": 1}
    assert await asyncio.wait_for(served, 30) == 1


async def test_bad_input_fails_the_step_for_good(dagnats_env: DagnatsEnv, base_url: str) -> None:
    served = asyncio.ensure_future(asyncio.to_thread(http_worker.serve, base_url, max_tasks=1))
    run = await dagnats_env.client.start(
        {"name": "words-only", "steps": [{"id": "count_words", "retry": {"max_attempts": 3}}]},
        42,
    )
    with pytest.raises(RunFailedError, match="needs text"):
        await run.result(timeout=20)
    error = (await run.status()).error
    assert error is not None and error.type == "BadInput"
    await asyncio.wait_for(served, 30)


def test_count_words_alone() -> None:
    assert http_worker.count_words("a b a") == {"a": 2, "b": 1}
    with pytest.raises(TypeError):
        http_worker.count_words(None)
