"""The NATS seam on a real nats-server: connect errors, compare-and-swap, and a run's current
state read one way (snapshot plus the history events it has not folded)."""

from __future__ import annotations

import socket

import pytest

import dagnats
from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.kvscan import get_entry
from dagnats._nats.payloads import Payloads
from dagnats._nats.state import current_state
from dagnats._nats.stores import DefinitionStore, read_snapshot
from dagnats._nats.types import NatsClient
from dagnats.errors import NatsUnavailableError
from dagnats.protocol.limits import LimitError
from dagnats.testing import DagnatsEnv


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connect_refused_is_nats_unavailable() -> None:
    url = f"nats://127.0.0.1:{_closed_port()}"
    with pytest.raises(NatsUnavailableError, match=url):
        await connect_nats(
            url, connect_timeout_s=0.5, max_reconnect_attempts=1, reconnect_time_wait_s=0.1
        )


async def test_cas_create_then_update_and_lost_races(nc: NatsClient) -> None:
    kv = await nc.jetstream().key_value(protocol.KV_CONCURRENCY)
    assert await cas.read(kv, "k") == (None, 0)
    rev = await cas.write(kv, "k", b"1", 0)
    assert rev is not None
    assert await cas.write(kv, "k", b"x", 0) is None  # create when it exists: lost
    assert await cas.write(kv, "k", b"x", rev + 5) is None  # stale revision: lost
    rev2 = await cas.write(kv, "k", b"2", rev)
    assert rev2 is not None and rev2 > rev
    assert await cas.read(kv, "k") == (b"2", rev2)
    await kv.delete("k")
    # nats-py reports a deleted key as absent; creating it again wins.
    assert await cas.read(kv, "k") == (None, 0)
    assert await cas.write_json(kv, "k", {"n": 3}, 0)
    value, rev3 = await cas.read_json(kv, "k")
    assert value == {"n": 3} and rev3 > rev2


async def test_a_key_kv_cannot_hold_is_a_limit_error_not_nats_py_s(nc: NatsClient) -> None:
    kv = await nc.jetstream().key_value(protocol.KV_CONCURRENCY)
    with pytest.raises(LimitError, match="not a KV key"):
        await get_entry(kv, ":")
    assert await get_entry(kv, "absent") is None


async def test_current_state_folds_history_past_the_snapshot() -> None:
    worker = dagnats.Worker()

    @worker.task()
    async def add_one(ctx: dagnats.TaskContext, x: int) -> int:
        return x + 1

    wf = dagnats.Workflow("seam-state")
    a = wf.step("a", task=add_one)
    wf.step("b", task=add_one, depends_on=[a])
    async with DagnatsEnv.start() as env:
        env.add_worker(worker)
        run = await env.client.start(wf, 1)
        assert await run.result(timeout=10) == 3
        js = env.nc.jetstream()
        runs = await js.key_value(protocol.KV_RUNS)
        payloads = Payloads(js)
        defs = await DefinitionStore.open(js)
        stored = await read_snapshot(runs, payloads, run.run_id)
        assert stored.exists and stored.state is not None and stored.revision > 0
        # Without a snapshot the same state comes from the history alone.
        await runs.purge(run.run_id)
        state = await current_state(env.nc, runs, defs, payloads, run.run_id)
        assert state.status == "completed"
        assert state.steps["b"].output == 3
        with pytest.raises(dagnats.RunNotFoundError):
            await current_state(env.nc, runs, defs, payloads, "0" * 28)
