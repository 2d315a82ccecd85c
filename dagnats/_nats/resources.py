"""Create or update every stream, KV bucket and object store dagnats uses (DESIGN.md §3).

Idempotent and safe to run from several processes at once: each resource is added, and if
it exists with another configuration it is updated in place; data is never deleted.

Replicas are never lowered: a part started without ``replicas`` (``None``) creates what is
missing with one replica and keeps what exists as it is, so a worker started with defaults
cannot scale a cluster's R3 streams down to R1. A part that asks for more replicas than a
resource has raises it, with a warning that says so (on a cluster that re-replicates data).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import BadRequestError, NotFoundError

from dagnats import protocol
from dagnats.errors import DagnatsError
from dagnats.protocol import partitions as parts

log = logging.getLogger(__name__)

DAY_S = 86_400.0
DEDUP_WINDOW_S = 120.0
MAX_MSG_BYTES = 1024 * 1024  # nats-server's default max_payload
# Payloads and large snapshots must outlive the longest run: a 365-day sleep plus margin.
PAYLOAD_TTL_S = 400 * DAY_S


@dataclass(frozen=True)
class Bucket:
    name: str
    history: int = 1
    ttl_s: float | None = None  # bucket-wide max age
    direct: bool = True


BUCKETS: tuple[Bucket, ...] = (
    Bucket(protocol.KV_DEFS, history=64),
    Bucket(protocol.KV_RUNS),
    Bucket(protocol.KV_CHECKPOINTS),
    Bucket(protocol.KV_SIGNALS, ttl_s=30 * DAY_S),
    Bucket(protocol.KV_WAITERS),
    Bucket(protocol.KV_WORKERS, ttl_s=60.0),
    Bucket(protocol.KV_IDEMPOTENCY, ttl_s=DAY_S),
    Bucket(protocol.KV_RATE_LIMITS),
    Bucket(protocol.KV_CONCURRENCY),
    Bucket(protocol.KV_APPROVALS, ttl_s=7 * DAY_S + 3600.0),
    Bucket(protocol.KV_STICKY, ttl_s=DAY_S),
    Bucket(protocol.KV_TRIGGERS),
    Bucket(protocol.KV_TRIGGER_STATE),
    # A run may be scheduled up to a year ahead; a record outlives it by a margin.
    Bucket(protocol.KV_SCHEDULED, ttl_s=400 * DAY_S),
    Bucket(protocol.KV_DEBOUNCE, ttl_s=30 * DAY_S),
    Bucket(protocol.KV_HTTP_ANSWERS, ttl_s=DAY_S),
    Bucket(protocol.KV_LOGS, ttl_s=30 * DAY_S),
    # Partition leases and engine heartbeats: a key not renewed within the max age is gone.
    Bucket(parts.KV_LEASES, ttl_s=parts.LEASE_TTL_S),
)


def stream_configs(
    replicas: int = 1, partitions: int = parts.DEFAULT_PARTITIONS
) -> list[StreamConfig]:
    common = {"storage": StorageType.FILE, "num_replicas": replicas}
    return [
        StreamConfig(
            name=protocol.HISTORY_STREAM,
            subjects=["history.>"],
            # history.<run> is stored as history.<partition>.<run> (ADR 0013).
            subject_transform=SubjectTransform(
                src=parts.HISTORY_TRANSFORM_SRC, dest=parts.history_transform_dest(partitions)
            ),
            retention=RetentionPolicy.LIMITS,
            # Kept as long as a run may live (a 365-day sleep and then some); delete_run
            # purges a run's history earlier.
            max_age=PAYLOAD_TTL_S,
            duplicate_window=DEDUP_WINDOW_S,
            allow_direct=True,
            max_msg_size=MAX_MSG_BYTES,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            name=protocol.TASK_STREAM,
            subjects=["task.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            duplicate_window=DEDUP_WINDOW_S,
            allow_atomic=True,
            max_msg_size=MAX_MSG_BYTES,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            name=protocol.TIMER_STREAM,
            subjects=["timer.>", protocol.DEBOUNCE_TIMER_FILTER],
            retention=RetentionPolicy.WORK_QUEUE,
            duplicate_window=DEDUP_WINDOW_S,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            name=protocol.EVENT_STREAM,
            subjects=["event.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=7 * DAY_S,
            duplicate_window=DEDUP_WINDOW_S,
            allow_direct=True,
            max_msg_size=MAX_MSG_BYTES,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            # Worker-loss advisories, kept so that an engine that was down still sees them.
            name=protocol.ADVISORY_STREAM,
            subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{protocol.TASK_STREAM}.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=7 * DAY_S,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            name=protocol.DLQ_STREAM,
            subjects=["dead.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=30 * DAY_S,
            duplicate_window=DEDUP_WINDOW_S,
            allow_direct=True,
            **common,  # type: ignore[arg-type]
        ),
    ]


def bucket_config(b: Bucket, replicas: int = 1) -> StreamConfig:
    """The stream behind a KV bucket, as nats-py's create_key_value would make it."""
    return StreamConfig(
        name=f"KV_{b.name}",
        subjects=[f"$KV.{b.name}.>"],
        allow_direct=b.direct,
        allow_rollup_hdrs=True,
        allow_msg_ttl=True,
        deny_delete=True,
        discard=DiscardPolicy.NEW,
        duplicate_window=min(DEDUP_WINDOW_S, b.ttl_s) if b.ttl_s else DEDUP_WINDOW_S,
        max_age=b.ttl_s,
        max_consumers=-1,
        max_msgs=-1,
        max_msgs_per_subject=b.history,
        max_msg_size=MAX_MSG_BYTES,
        num_replicas=replicas,
        storage=StorageType.FILE,
    )


MAX_REPLICAS = 5  # JetStream's limit


def check_replicas(replicas: int | None) -> int | None:
    if replicas is not None and (
        isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 5
    ):
        raise ValueError(f"replicas must be an integer from 1 to {MAX_REPLICAS}, got {replicas!r}")
    return replicas


async def _info(js: JetStreamContext, name: str) -> StreamConfig | None:
    try:
        return (await js.stream_info(name)).config
    except NotFoundError:
        return None


def _replicas_to_keep(name: str, existing: StreamConfig, asked: int | None) -> int:
    have = existing.num_replicas or 1
    if asked is not None and have < asked:
        log.warning(
            "%s has %d replica(s) and %d were asked: raising it to %d", name, have, asked, asked
        )
        return asked
    return have  # never lowered, even by a part that asked for fewer


async def add_or_update(js: JetStreamContext, config: StreamConfig, asked: int | None) -> None:
    """Create ``config``'s stream, or bring an existing one up to date (replicas kept)."""
    existing = await _info(js, config.name or "")
    if existing is None:
        try:
            await js.add_stream(dataclasses.replace(config, num_replicas=asked or 1))
            return
        except BadRequestError as exc:
            if exc.err_code != 10058:  # 10058: exists (a racing creator won)
                raise
            existing = await _info(js, config.name or "")
            if existing is None:
                raise
    keep = _replicas_to_keep(f"stream {config.name}", existing, asked)
    try:
        await js.update_stream(dataclasses.replace(config, num_replicas=keep))
    except BadRequestError as upd:
        log.warning("stream %s exists and cannot be updated: %s", config.name, upd)


async def _object_store(js: JetStreamContext, asked: int | None) -> None:
    name = f"OBJ_{protocol.OBJ_PAYLOADS}"
    existing = await _info(js, name)
    if existing is None:
        config = ObjectStoreConfig(ttl=PAYLOAD_TTL_S, max_bytes=-1, replicas=asked or 1)
        try:
            await js.create_object_store(protocol.OBJ_PAYLOADS, config=config)
            return
        except BadRequestError as exc:
            if exc.err_code != 10058:
                raise
            existing = await _info(js, name)
            if existing is None:
                raise
    keep = _replicas_to_keep("object store " + protocol.OBJ_PAYLOADS, existing, asked)
    if keep != (existing.num_replicas or 1):
        try:
            await js.update_stream(dataclasses.replace(existing, num_replicas=keep))
        except BadRequestError as upd:
            log.warning("object store %s cannot be updated: %s", protocol.OBJ_PAYLOADS, upd)


async def setup_resources(
    js: JetStreamContext, replicas: int | None = None, partitions: int | None = None
) -> None:
    """Create or update all streams, buckets and the payload object store.

    ``replicas``: what to create with and the least to keep (see the module docstring);
    ``None`` creates with one and changes no existing resource's replicas.
    ``partitions``: how many partitions the history is split into (ADR 0013), fixed once
    the stream exists; ``None`` keeps the existing count (or creates with the default).
    """
    check_replicas(replicas)
    n = await _history_partitions(js, partitions)
    configs = stream_configs(partitions=n) + [bucket_config(b) for b in BUCKETS]
    await asyncio.gather(
        *(add_or_update(js, c, replicas) for c in configs), _object_store(js, replicas)
    )


async def _history_partitions(js: JetStreamContext, asked: int | None) -> int:
    """The partition count to set up with: the existing stream's, checked against ``asked``."""
    if asked is not None:
        parts.check_partitions(asked)
    try:
        info = await js.stream_info(protocol.HISTORY_STREAM)
    except NotFoundError:
        return asked or parts.DEFAULT_PARTITIONS
    have = history_partitions(info.config)
    if have is None and not info.state.messages:
        return asked or parts.DEFAULT_PARTITIONS  # nothing stored yet: partition it now
    if have is None:
        raise DagnatsError(
            f"stream {protocol.HISTORY_STREAM} was created by a dagnats before partitioned "
            "engines (ADR 0013) and its history is stored unpartitioned; this version cannot "
            "read it. Let its runs finish with the older version, then delete the stream "
            "(docs/operations.md, 'Several engines')"
        )
    if asked is not None and asked != have:
        raise DagnatsError(
            f"stream {protocol.HISTORY_STREAM} has {have} partitions and {asked} were asked: "
            "the partition count is fixed once the stream exists (runs are mapped by it)"
        )
    return have


def history_partitions(config: StreamConfig) -> int | None:
    """The partition count of a history stream's configuration (``None``: unpartitioned)."""
    tr = config.subject_transform
    if tr is None:
        return None
    return parts.partitions_of_transform(tr.src, tr.dest)


async def partition_count(js: JetStreamContext) -> int:
    """How many partitions the (existing) history stream has."""
    config = await _info(js, protocol.HISTORY_STREAM)
    n = history_partitions(config) if config is not None else None
    if n is None:
        raise DagnatsError(
            f"stream {protocol.HISTORY_STREAM} is missing or unpartitioned: run setup first"
        )
    return n


async def stream_exists(js: JetStreamContext, name: str) -> bool:
    try:
        await js.stream_info(name)
    except NotFoundError:
        return False
    return True
