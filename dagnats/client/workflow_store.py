"""``WorkflowStore``: workflow states as JSON in a JetStream KV bucket (the Beluga seed).

The NATS workflow store of the Beluga seed (``seeds/002``), in Python: each
:class:`WorkflowState` is one JSON value keyed by its ``workflow_id``; ``list`` enumerates
the bucket's keys, so it sees the states every store instance saved (no in-memory index,
always read from NATS: one ``keys`` plus one ``get`` per key). The bucket is created when
missing and reused unchanged when present. Errors carry the operation and the KV step,
``store/load: get: <underlying error>``, as the seed's do.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from dagnats._nats.closing import close_within
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.kvbucket import BucketError, JsonBucket
from dagnats._nats.types import NatsClient
from dagnats.client.client import default_url
from dagnats.errors import StoreError
from dagnats.protocol import clock

DEFAULT_BUCKET = "dagnats_workflows"
_KEY = re.compile(r"^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$")  # a KV key, no empty tokens
MAX_LIST = 100_000  # states one list() reads at most


WorkflowStatus = Literal["running", "completed", "failed", "canceled"]


class HistoryEvent(BaseModel):
    """One entry of a workflow's history."""

    id: int = 0
    """Its position in the history."""
    type: str = ""
    """What happened (e.g. ``activity_completed``, ``signal_received``)."""
    timestamp: datetime = Field(default_factory=clock.now)
    """When it happened (RFC 3339, UTC)."""
    activity_name: str = ""
    """The activity it is about, if any."""
    input: Any = None
    """The activity's input."""
    result: Any = None
    """The activity's result."""
    error: str = ""
    """The activity's error, empty when none."""
    signal_name: str = ""
    """The signal received, if any."""
    signal_payload: Any = None
    """The signal's data."""
    duration: int = 0
    """How long the activity took, in nanoseconds (Go's ``time.Duration`` in JSON)."""


class WorkflowState(BaseModel):
    """What the store keeps of one workflow (the seed's ``workflow.WorkflowState``)."""

    workflow_id: str
    """The key in the bucket: letters, digits and ``- _ = / .`` (no empty dot tokens)."""
    run_id: str = ""
    """The run of the workflow this state belongs to."""
    status: WorkflowStatus = "running"
    """``running``, ``completed``, ``failed`` or ``canceled``."""
    input: Any = None
    """The workflow's input."""
    result: Any = None
    """Its result, once completed."""
    error: str = ""
    """Why it failed, empty when it did not."""
    history: list[HistoryEvent] = Field(default_factory=list)
    """What happened, in order."""
    created_at: datetime = Field(default_factory=clock.now)
    """When the workflow started (RFC 3339, UTC)."""
    updated_at: datetime = Field(default_factory=clock.now)
    """When this state was last changed (RFC 3339, UTC)."""


def _check_id(operation: str, workflow_id: str) -> None:
    if not workflow_id:
        raise StoreError(f"store/{operation}: workflow_id is empty")
    if not _KEY.match(workflow_id):
        raise StoreError(
            f"store/{operation}: invalid workflow_id {workflow_id!r}: a KV key is letters, "
            "digits and - _ = / . (no leading, trailing or doubled dots)"
        )


class WorkflowStore:
    """Workflow states in a KV bucket; ``await WorkflowStore.connect(url)`` or
    ``WorkflowStore(connection=nc)`` (a borrowed connection: ``close()`` leaves it open)."""

    def __init__(self, connection: NatsClient, *, bucket: str = DEFAULT_BUCKET) -> None:
        self.nc = connection
        self.bucket_name = bucket
        self._owned = False
        self._bucket: JsonBucket | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(
        cls, url: str | None = None, *, bucket: str = DEFAULT_BUCKET
    ) -> WorkflowStore:
        """Connect to ``url`` (``DAGNATS_NATS_URL``, else ``nats://127.0.0.1:4222``) and
        create or reuse the bucket now, so a wrong URL or bucket fails here."""
        nc = await connect_nats(url or default_url(), connect_timeout_s=5)
        store = cls(nc, bucket=bucket)
        store._owned = True
        try:
            await store._kv("connect")
        except BaseException:
            await close_within(nc)
            raise
        return store

    async def _kv(self, operation: str) -> JsonBucket:
        if self._closed:
            raise StoreError(f"store/{operation}: the store is closed")
        if self._bucket is None:
            async with self._opening:
                if self._bucket is None:
                    try:
                        self._bucket = await JsonBucket.open(self.nc.jetstream(), self.bucket_name)
                    except BucketError as exc:
                        raise StoreError(f"store/{operation}: {exc}") from exc
        return self._bucket

    async def save(self, state: WorkflowState) -> None:
        """Store ``state`` under its ``workflow_id`` (replacing what was there)."""
        _check_id("save", state.workflow_id)
        body = state.model_dump_json().encode()
        limit = self.nc.max_payload
        if limit and len(body) > limit - 1024:
            raise StoreError(
                f"store/save: put: the state of {state.workflow_id!r} is {len(body)} bytes, "
                f"above what one NATS message holds ({limit} bytes)"
            )
        bucket = await self._kv("save")
        try:
            await bucket.put(state.workflow_id, body)
        except BucketError as exc:
            raise StoreError(f"store/save: {exc}") from exc

    async def load(self, workflow_id: str) -> WorkflowState | None:
        """The state saved under ``workflow_id``, or ``None`` when there is none."""
        _check_id("load", workflow_id)
        bucket = await self._kv("load")
        try:
            raw = await bucket.get(workflow_id)
        except BucketError as exc:
            raise StoreError(f"store/load: {exc}") from exc
        return None if raw is None else _decode("load", workflow_id, raw)

    async def list(
        self, *, status: WorkflowStatus | None = None, limit: int | None = None
    ) -> list[WorkflowState]:
        """Every state in the bucket (saved by any instance), by ``workflow_id``; only those
        with ``status`` when given, at most ``limit`` (``None`` or 0: no limit)."""
        if limit is not None and limit < 0:
            raise StoreError(f"store/list: limit must be >= 0, got {limit}")
        bucket = await self._kv("list")
        out: list[WorkflowState] = []
        try:
            for key in await bucket.keys(limit=MAX_LIST):
                raw = await bucket.get(key)
                if raw is None:
                    continue  # deleted by another instance since the keys were read
                state = _decode("list", key, raw)
                if status is not None and state.status != status:
                    continue
                out.append(state)
                if limit and len(out) >= limit:
                    break
        except BucketError as exc:
            raise StoreError(f"store/list: {exc}") from exc
        return out

    async def delete(self, workflow_id: str) -> None:
        """Remove the state of ``workflow_id``; an absent one is a no-op."""
        _check_id("delete", workflow_id)
        bucket = await self._kv("delete")
        try:
            await bucket.delete(workflow_id)
        except BucketError as exc:
            raise StoreError(f"store/delete: {exc}") from exc

    async def close(self) -> None:
        """Close the connection if this store opened it; a borrowed one stays open."""
        self._closed = True
        if self._owned:
            await close_within(self.nc)

    async def __aenter__(self) -> WorkflowStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _decode(operation: str, key: str, raw: bytes) -> WorkflowState:
    try:
        return WorkflowState.model_validate_json(raw)
    except ValidationError as exc:
        raise StoreError(f"store/{operation}: decode {key!r}: {exc}") from exc
