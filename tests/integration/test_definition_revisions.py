"""Methodology: the definition store's per-workflow revisions on a real nats-server
(``dagnats_env``), through ``DefinitionStore`` and the client as the API uses them: racing
registrations get distinct consecutive numbers, a value written before the revision
envelope (a bare definition, as older versions stored it) keeps its KV number and is
continued, and reading an old revision's history leaves no consumer on the bucket."""

from __future__ import annotations

import asyncio
import json

import dagnats
from dagnats import protocol
from dagnats._nats.stores import DefinitionStore
from dagnats.testing import DagnatsEnv


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
