"""``dagnats.WorkflowStore`` against the Beluga seed's documented behaviours, one by one.

Methodology: a real nats-server per test (the ``nats_server`` fixture); each test names the
sentence of ``seeds/002`` it checks. Raw bucket contents are read with nats-py through the
seam's types to check what is stored, not only what the store says.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import dagnats
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.types import NatsClient
from dagnats.client.workflow_store import DEFAULT_BUCKET, HistoryEvent
from dagnats.server import EmbeddedNats


def state(wid: str, status: str = "running", **extra: object) -> dagnats.WorkflowState:
    return dagnats.WorkflowState.model_validate(
        {"workflow_id": wid, "run_id": f"run-{wid}", "status": status, "input": "start", **extra}
    )


async def test_connect_creates_the_bucket_and_saves_json_keyed_by_workflow_id(
    nats_server: EmbeddedNats,
) -> None:
    # "Each workflow state is stored as a JSON-encoded value ... with the workflow ID as the key"
    store = await dagnats.WorkflowStore.connect(nats_server.url)
    try:
        history = [
            HistoryEvent(
                id=1,
                type="activity_completed",
                activity_name="fetch",
                result={"rows": 3},
                duration=1_500_000_000,
            )
        ]
        await store.save(state("data-pipeline-1", history=history))
        kv = await store.nc.jetstream().key_value(DEFAULT_BUCKET)
        raw = json.loads((await kv.get("data-pipeline-1")).value or b"")
        assert raw["workflow_id"] == "data-pipeline-1" and raw["input"] == "start"
        assert raw["history"][0]["duration"] == 1_500_000_000
        assert raw["created_at"].endswith("Z")  # RFC 3339 UTC
    finally:
        await store.close()


async def test_an_existing_bucket_is_reused_without_modification(nc: NatsClient) -> None:
    # "If the bucket already exists, it is reused without modification."
    js = nc.jetstream()
    await js.create_key_value(bucket="my-workflows", history=5, description="x")
    store = dagnats.WorkflowStore(connection=nc, bucket="my-workflows")
    await store.save(state("a"))
    info = await js.stream_info("KV_my-workflows")
    assert info.config.max_msgs_per_subject == 5 and info.config.description == "x"


async def test_save_refuses_an_empty_or_invalid_workflow_id(nc: NatsClient) -> None:
    # "Returns an error if WorkflowID is empty"
    store = dagnats.WorkflowStore(connection=nc)
    with pytest.raises(dagnats.StoreError, match=r"^store/save: workflow_id is empty$"):
        await store.save(state(""))
    with pytest.raises(dagnats.StoreError, match="store/save: invalid workflow_id 'a b'"):
        await store.save(state("a b"))
    with pytest.raises(dagnats.StoreError, match="store/load: invalid workflow_id"):
        await store.load("a..b")


async def test_load_round_trips_and_returns_none_when_absent(nc: NatsClient) -> None:
    # "Retrieves and deserializes workflow state by key. Returns nil, nil if not found."
    store = dagnats.WorkflowStore(connection=nc)
    saved = state("wf-123", "completed", result="completed: start")
    await store.save(saved)
    assert await store.load("wf-123") == saved
    assert await store.load("absent") is None


async def test_list_filters_by_status_and_limit_and_is_empty_for_no_keys(nc: NatsClient) -> None:
    # "Supports filtering by Status and limiting results with Limit. Returns nil, nil if no
    # keys exist in the bucket."
    store = dagnats.WorkflowStore(connection=nc)
    assert await store.list() == []
    for i, status in enumerate(["running", "completed", "running", "failed", "running"]):
        await store.save(state(f"wf-{i}", status))
    assert [s.workflow_id for s in await store.list()] == [f"wf-{i}" for i in range(5)]
    running = await store.list(status="running")
    assert [s.workflow_id for s in running] == ["wf-0", "wf-2", "wf-4"]
    assert len(await store.list(status="running", limit=2)) == 2
    assert await store.list(status="canceled") == []
    with pytest.raises(dagnats.StoreError, match="store/list: limit must be >= 0"):
        await store.list(limit=-1)


async def test_list_sees_states_saved_by_another_instance(nats_server: EmbeddedNats) -> None:
    # "List discovers all workflows in the bucket, including those saved by other store
    # instances. No in-memory cache is needed; state is always read from NATS."
    one = await dagnats.WorkflowStore.connect(nats_server.url, bucket="shared")
    two = await dagnats.WorkflowStore.connect(nats_server.url, bucket="shared")
    try:
        await one.save(state("from-one"))
        await two.save(state("from-two", "completed"))
        assert {s.workflow_id for s in await one.list()} == {"from-one", "from-two"}
        assert [s.workflow_id for s in await two.list(status="running")] == ["from-one"]
        await two.delete("from-one")
        assert await one.load("from-one") is None
        assert [s.workflow_id for s in await one.list()] == ["from-two"]
    finally:
        await one.close()
        await two.close()


async def test_delete_of_an_absent_key_is_a_no_op(nc: NatsClient) -> None:
    # "Deleting a non-existent key is a no-op (returns nil)."
    store = dagnats.WorkflowStore(connection=nc)
    await store.delete("never-saved")
    await store.save(state("x"))
    await store.delete("x")
    await store.delete("x")
    assert await store.load("x") is None and await store.list() == []


async def test_close_leaves_a_borrowed_connection_open(nats_server: EmbeddedNats) -> None:
    # "When providing an existing NATS connection, the store does not own the connection and
    # will not close it"; "Closes the underlying NATS connection if the store created it."
    nc = await connect_nats(nats_server.url)
    borrowed = dagnats.WorkflowStore(connection=nc, bucket="my-workflows")
    await borrowed.save(state("b"))
    await borrowed.close()
    assert nc.is_connected
    with pytest.raises(dagnats.StoreError, match="store/load: the store is closed"):
        await borrowed.load("b")
    owned = await dagnats.WorkflowStore.connect(nats_server.url)
    await owned.close()
    assert owned.nc.is_closed
    await nc.close()


async def test_errors_are_prefixed_with_the_operation_and_the_kv_step(
    nats_server: EmbeddedNats,
) -> None:
    # "Errors are wrapped with descriptive prefixes ... 'nats/load: get: <underlying error>'"
    nc = await connect_nats(nats_server.url)
    store = dagnats.WorkflowStore(connection=nc)
    await store.save(state("wf-1"))
    await nc.close()  # the borrowed connection is gone under the store
    with pytest.raises(dagnats.StoreError, match=r"^store/load: get: ConnectionClosedError"):
        await store.load("wf-1")
    with pytest.raises(dagnats.StoreError, match=r"^store/save: put: ConnectionClosedError"):
        await store.save(state("wf-1"))
    with pytest.raises(dagnats.StoreError, match=r"^store/list: keys: ConnectionClosedError"):
        await store.list()


async def test_connect_to_nothing_is_a_clear_error() -> None:
    with pytest.raises(dagnats.NatsUnavailableError):
        await dagnats.WorkflowStore.connect("nats://127.0.0.1:1")


async def test_a_state_too_large_for_one_message_is_refused(nc: NatsClient) -> None:
    store = dagnats.WorkflowStore(connection=nc)
    with pytest.raises(dagnats.StoreError, match="store/save: put: the state of 'big' is"):
        await store.save(state("big", input="x" * 2_000_000))
    assert await store.load("big") is None


def test_a_state_has_the_seed_s_fields_and_defaults() -> None:
    s = dagnats.WorkflowState(workflow_id="w")
    assert s.status == "running" and s.history == [] and s.error == ""
    assert s.created_at.tzinfo is not None and s.created_at <= datetime.now(UTC)
    with pytest.raises(ValueError, match="status"):
        dagnats.WorkflowState.model_validate({"workflow_id": "w", "status": "paused"})
