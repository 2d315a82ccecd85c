"""Methodology: hypothesis generates run inputs (JSON of every kind: deep nesting around the
depth limit, big and odd strings, huge integers, NaN, raw bytes) and sends each in a
``run.start`` request to a real API, engine and worker (``echo`` returns its input). An
accepted start must end with exactly that input as the output, within 20 s: nothing
accepted is lost or stuck (inputs nested 197-255 deep were once accepted and silently
dropped). A refused one must be a 4xx that says why. The no-500 fuzz of every endpoint is
tests/integration/test_api_fuzz.py; this one follows the accepted runs to their end.
Bounded: ``EXAMPLES`` x ``--chaos-scale`` examples."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagnats
from tests.chaos.harness import scale
from tests.integration.test_api_fuzz import _Service, running

EXAMPLES = 60
RESULT_S = 20.0


class _EchoService(_Service):
    """The fuzz's API service with a worker whose ``echo`` returns its input."""

    async def _start(self) -> None:
        await super()._start()
        assert self.env is not None
        worker = dagnats.Worker(name="echo", concurrency=32)

        @worker.task()
        async def echo(ctx: dagnats.TaskContext, value: Any = None) -> Any:
            return value  # a one-parameter handler is given the whole input

        self.env.add_worker(worker)
        await self.env.wait_workers_ready()
        wf = dagnats.Workflow("echo")
        wf.step("e", task="echo")
        await self.env.client.register(wf)

    async def start(self, data: bytes) -> tuple[int, dict[str, Any]]:
        code, raw = await self.reply("run.start", data)
        body = json.loads(raw) if raw else {}
        return code, body if isinstance(body, dict) else {}

    async def output(self, run_id: str) -> Any:
        assert self.env is not None
        return await self.env.client.run(run_id).result(timeout=RESULT_S)


@pytest.fixture(scope="module")
def echo_service() -> Iterator[_EchoService]:
    yield from running(_EchoService())


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["", "é\u0000\ud7ff", "a" * 70_000, "${{x}}", "{{ .x }}", ">", "*"])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@st.composite
def _nested(draw: st.DrawFn) -> Any:
    value: Any = draw(_scalars)
    for _ in range(draw(st.integers(min_value=110, max_value=140))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (NaN never gets this far: it is not JSON)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@settings(
    max_examples=EXAMPLES * scale(),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=st.one_of(_json, _json, _nested()))  # a third around the depth limit
def test_every_accepted_input_ends_as_the_output(echo_service: _EchoService, value: Any) -> None:
    body: Any = {"workflow": "echo", "input": value}
    data = json.dumps(body).encode()  # NaN and infinities go out as bare words: not JSON
    code, reply = echo_service.call(echo_service.start(data))
    assert code < 500, (code, reply, data[:200])
    if code >= 400:
        assert reply.get("error") or reply, (code, data[:200])
        return
    output = echo_service.call(echo_service.output(str(reply["run_id"])), RESULT_S + 5)
    assert _same(output, value), (data[:200], output)
