"""Methodology: hypothesis sends generated request bodies (right fields with wrong types, odd
names, deep and wide JSON, raw bytes) to every endpoint of one API service on a real
nats-server, and checks that no answer is a 500 and that the connection stays up. The service
runs on an event loop in a background thread (hypothesis drives a plain function); every
request waits at most 10 s; examples are bounded so that the test stays short in CI."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagnats
from dagnats import protocol
from dagnats.testing import DagnatsEnv

ENDPOINTS = [
    "workflow.register",
    "workflow.list",
    "workflow.get",
    "workflow.delete",
    "run.start",
    "run.get",
    "run.list",
    "run.events",
    "run.cancel",
    "run.delete",
    "run.signal",
    "event.publish",
    "approval.approve",
    "approval.reject",
    "run.resolve",
    "run.retry",
    "run.rerun",
    "run.start_many",
    "run.cancel_many",
    "dlq.list",
    "dlq.replay",
]
FIELDS = [
    "name", "workflow", "run_id", "input", "data", "limit", "status", "revision", "token",
    "reason", "force", "definition", "idempotency_key",
    "seq", "inputs", "run_ids", "since", "last", "dry_run", "idempotency_keys",
]  # fmt: skip

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["fuzz", "a" * 5000, "a.b", "*", ">", "r1", "x y", "", "é", "-1"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=100, max_value=3000))
    return b'{"input": ' + b"[" * depth + b"]" * depth + b', "workflow": "fuzz"}'


_bodies = (
    st.dictionaries(st.sampled_from(FIELDS), _json, max_size=5).map(
        lambda d: json.dumps(d).encode()
    )
    | _json.map(lambda v: json.dumps(v).encode())
    | _deep()
    | st.binary(max_size=64)
)


class _Service:
    """A DagnatsEnv on its own event loop thread, called synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.env: DagnatsEnv | None = None
        self._cm: Any = None

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def _start(self) -> None:
        self._cm = DagnatsEnv.start()
        self.env = await self._cm.__aenter__()
        wf = dagnats.Workflow("fuzz")
        wf.step("a", task="never-served")
        await self.env.client.register(wf)

    async def _stop(self) -> None:
        await self._cm.__aexit__(None, None, None)

    async def reply(self, op: str, data: bytes) -> tuple[int, bytes]:
        """The service's status code for ``op`` with body ``data``, and its reply."""
        assert self.env is not None
        msg = await self.env.nc.request(f"{protocol.API_SUBJECT_PREFIX}.{op}", data, timeout=10.0)
        return int((msg.headers or {}).get("Nats-Service-Error-Code", "200")), msg.data

    async def request(self, op: str, data: bytes) -> tuple[int, bool]:
        assert self.env is not None
        code, _ = await self.reply(op, data)
        return code, self.env.nc.is_connected


S = TypeVar("S", bound=_Service)


def running(svc: S) -> Iterator[S]:
    """Start ``svc`` on its thread, hand it over, then stop it and close its loop (a fixture
    body: ``yield from running(_Service())``)."""
    svc.thread.start()
    svc.call(svc._start())
    try:
        yield svc
    finally:
        svc.call(svc._stop())
        svc.loop.call_soon_threadsafe(svc.loop.stop)
        svc.thread.join(timeout=10.0)
        svc.loop.close()  # its self-pipe would otherwise be reported as an unclosed socket


@pytest.fixture(scope="module")
def service() -> Iterator[_Service]:
    yield from running(_Service())


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(op=st.sampled_from(ENDPOINTS), data=_bodies)
def test_no_request_body_gets_a_500(service: _Service, op: str, data: bytes) -> None:
    code, connected = service.call(service.request(op, data))
    assert code < 500 or code == 503, (op, data[:200], code)
    assert connected
