"""Methodology: the definition store's per-workflow revisions on a real nats-server
(``dagnats_env``), through ``DefinitionStore`` and the client as the API uses them: racing
registrations get distinct consecutive numbers while identical ones (and a ``Workflow``
object started many times at once) store one, a client registers each definition once, a
value written before the revision envelope (a bare definition, as older versions stored
it) keeps its KV number and is continued, and reading an old revision's history leaves no
consumer on the bucket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import dagnats
from dagnats import protocol
from dagnats._nats.stores import DefinitionStore
from dagnats.errors import WorkflowNotFoundError
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import WAIT_S


def _flow(name: str, version: str) -> dagnats.Workflow:
    wf = dagnats.Workflow(name, version=version)
    wf.sleep("nap", duration="1ms")
    return wf


async def test_racing_registrations_get_consecutive_numbers(dagnats_env: DagnatsEnv) -> None:
    store = await DefinitionStore.open(dagnats_env.nc.jetstream())
    defs = [_flow("raced", str(i)).to_definition() for i in range(8)]
    revisions = await asyncio.gather(*(store.put(d) for d in defs))
    assert sorted(revisions) == list(range(1, 9))
    assert await store.revisions("raced") == list(range(1, 9))
    for d, rev in zip(defs, revisions, strict=True):
        found = await DefinitionStore(store.kv).get("raced", rev)  # a fresh cache
        assert found is not None and found[0].version == d.version


async def test_racing_registrations_of_one_definition_store_it_once(
    dagnats_env: DagnatsEnv,
) -> None:
    """Identical registrations racing (as 50 clients would) all get revision 1: the one
    that writes first makes it, the others find the same definition when they read again."""
    store = await DefinitionStore.open(dagnats_env.nc.jetstream())
    defs = [_flow("same", "1").to_definition() for _ in range(50)]
    stores = [DefinitionStore(store.kv) for _ in defs]  # each its own cache, as separate APIs
    revisions = await asyncio.gather(*(st.put(d) for st, d in zip(stores, defs, strict=True)))
    assert revisions == [1] * 50
    assert await store.revisions("same") == [1]


async def test_concurrent_starts_of_a_new_workflow_object_all_run(
    dagnats_env: DagnatsEnv,
) -> None:
    """A ``Workflow`` object started 300 times at once (``asyncio.gather``) is registered
    once by the client, and every run runs that revision."""
    worker = dagnats.Worker()

    @worker.task()
    async def double(ctx: dagnats.TaskContext, n: int) -> int:
        return 2 * n

    dagnats_env.add_worker(worker)
    wf = dagnats.Workflow("gathered")
    wf.step("double")
    runs = await asyncio.gather(*(dagnats_env.client.start(wf, i) for i in range(300)))
    results = await asyncio.gather(*(r.result(timeout=WAIT_S) for r in runs))
    assert results == [2 * i for i in range(300)]
    store = await DefinitionStore.open(dagnats_env.nc.jetstream())
    assert await store.revisions("gathered") == [1]


async def test_a_client_registers_each_definition_once(dagnats_env: DagnatsEnv) -> None:
    """Through the API: two definitions under one name are registered once each, however
    the starts alternate; with the workflow's revisions purged, a start by name finds no
    workflow and registers nothing, while starts of the object still run the revision they
    pinned (the API keeps the definitions it served). The re-registration of a revision that
    is really gone is tests/unit/test_registrations.py."""
    worker = dagnats.Worker()

    @worker.task()
    async def triple(ctx: dagnats.TaskContext, n: int) -> int:
        return 3 * n

    dagnats_env.add_worker(worker)
    client = dagnats_env.client
    calls: list[str] = []
    call = client.call

    async def counted(op: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        calls.append(op)
        return await call(op, body, **kw)

    client.call = counted  # type: ignore[method-assign]
    wf = dagnats.Workflow("redone")
    wf.step("triple")
    other = dagnats.Workflow("redone", version="2")
    other.step("triple")
    for flow in (wf, other, wf, other):
        assert await (await client.start(flow, 1)).result(timeout=WAIT_S) == 3
    assert calls.count("workflow.register") == 2
    kv = await dagnats_env.nc.jetstream().key_value(protocol.KV_DEFS)
    await kv.purge("redone")
    with pytest.raises(WorkflowNotFoundError):
        await client.start("redone", 1)
    runs = await asyncio.gather(*(client.start(wf, i) for i in range(20)))
    assert await asyncio.gather(*(r.result(timeout=WAIT_S) for r in runs)) == [
        3 * i for i in range(20)
    ]
    assert calls.count("workflow.register") == 2


async def test_a_bare_definition_of_old_keeps_its_number(dagnats_env: DagnatsEnv) -> None:
    js = dagnats_env.nc.jetstream()
    kv = await js.key_value(protocol.KV_DEFS)
    await dagnats_env.client.register(_flow("other", "1"))  # the KV sequence is now above 1
    old = _flow("legacy", "1.0").to_definition()
    seq = await kv.put("legacy", old.model_dump_json(by_alias=True, exclude_none=True).encode())
    assert seq > 1
    found = await dagnats_env.client.get_workflow("legacy")
    assert found["revision"] == seq
    info = await dagnats_env.client.register(_flow("legacy", "2.0"))
    assert info.revision == seq + 1
    pinned = await dagnats_env.client.get_workflow("legacy", seq)
    assert pinned["definition"]["version"] == "1.0"
    raw = json.loads((await kv.get("legacy")).value or b"{}")
    assert raw["revision"] == seq + 1 and raw["definition"]["version"] == "2.0"


async def test_reading_old_revisions_leaves_no_consumer(dagnats_env: DagnatsEnv) -> None:
    for version in ("1", "2", "3"):
        await dagnats_env.client.register(_flow("kept", version))
    js = dagnats_env.nc.jetstream()
    before = (await js.stream_info(f"KV_{protocol.KV_DEFS}")).state.consumer_count
    for _ in range(10):
        store = await DefinitionStore.open(js)  # an empty cache each time
        found = await store.get("kept", 1)
        assert found is not None and found[0].version == "1"
        assert await store.get("kept", 7) is None
    after = (await js.stream_info(f"KV_{protocol.KV_DEFS}")).state.consumer_count
    assert after == before
