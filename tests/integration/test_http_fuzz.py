"""Methodology: the OpenAPI document is checked against the OpenAPI 3.1 meta-schema, then
schemathesis fuzzes every operation of the live API (a real nats-server, engine, API and
uvicorn in a background thread): for each operation a bounded number of generated requests
(valid and invalid), each checked for no 5xx, a documented status, a documented content
type and a body that fits the documented schema. Bounded: ``MAX_EXAMPLES`` per operation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dagnats.server.http import HttpGateway
from dagnats.testing import DagnatsEnv

MAX_EXAMPLES = 15
START_TIMEOUT_S = 60.0
WORKFLOW = {
    "name": "fuzzed",
    "steps": [{"id": "nap", "type": "sleep", "config": {"duration": "1ms"}}],
}

# Bodies with rules a JSON Schema cannot say (a definition's graph and per-type rules; a run
# input checked against the workflow's own input_schema): a schema-valid body may be refused
# with 400/422, so "schema-valid data is accepted" is not checked there.
SEMANTIC_BODIES = {"POST /workflows", "POST /runs"}

pytestmark = pytest.mark.slow


class LiveApi:
    """The API in a thread with its own event loop (schemathesis calls it synchronously)."""

    def __init__(self) -> None:
        self.url = ""
        self._up = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-api", daemon=True)

    def __enter__(self) -> LiveApi:
        self._thread.start()
        if not self._up.wait(START_TIMEOUT_S) or self._error is not None:
            raise RuntimeError(f"the live API did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT_S)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - reported to the test thread by __enter__
            self._error = exc
            self._up.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with DagnatsEnv.start() as env:
            await env.client.register(WORKFLOW)
            gw = HttpGateway(env.nc, port=0)
            await gw.start()
            try:
                self.url = gw.url
                self._up.set()
                await self._stop.wait()
            finally:
                await gw.stop()


@pytest.fixture(scope="module")
def live_api() -> Iterator[LiveApi]:
    with LiveApi() as api:
        yield api


def _operations(live_api: LiveApi) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json", timeout=10)
    schema.validate()  # the OpenAPI 3.1 meta-schema
    ops = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation schemathesis cannot build from the document
        ops.append(result.ok())
    return ops


def test_openapi_document_is_valid(live_api: LiveApi) -> None:
    ops = _operations(live_api)
    assert {op.label for op in ops} >= {"POST /runs", "GET /runs/{run_id}", "GET /health"}


def test_fuzz_every_operation(live_api: LiveApi) -> None:
    failures: list[str] = []
    for op in _operations(live_api):
        excluded: list[schemathesis.CheckFunction] = (
            [positive_data_acceptance] if op.label in SEMANTIC_BODIES else []
        )

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
        @hypothesis.given(case=op.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=live_api.url,
                timeout=10,
                excluded_checks=excluded,  # noqa: B023 - check() runs within this iteration
            )

        try:
            check()
        except (AssertionError, BaseExceptionGroup) as exc:  # gathered: one report for all
            failures.append(f"{op.label}: {exc}")
    assert not failures, "\n\n".join(failures)
