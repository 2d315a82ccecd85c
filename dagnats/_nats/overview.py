"""What the system looks like right now: queue depths, engines' consumers, the dead-letter
count and the worker directory. Read by ``dagnats status``, the console and /metrics.

Every read is bounded (at most ``MAX_ROWS`` subjects, consumers and workers) and a missing
stream or bucket reads as empty: a status probe must answer on a half-set-up NATS too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dagnats import protocol
from dagnats._nats.kvscan import get_entry, list_keys, open_bucket

log = logging.getLogger(__name__)

MAX_ROWS = 1000


@dataclass(frozen=True)
class QueueDepth:
    """Messages stored under one task subject of ``TASK_QUEUES`` (queued or in flight)."""

    subject: str
    task: str
    group: str | None
    messages: int


@dataclass(frozen=True)
class ConsumerRow:
    """One durable consumer: its backlog, deliveries not yet acked, pull requests waiting."""

    name: str
    filter_subject: str | None
    pending: int
    ack_pending: int
    waiting: int


def _task_of(subject: str) -> tuple[str, str | None]:
    parts = subject.split(".")
    return parts[1] if len(parts) > 1 else subject, parts[2] if len(parts) > 2 else None


async def queue_depths(js: JetStreamContext) -> list[QueueDepth]:
    """Per task subject, how many task messages the work queue holds (largest first)."""
    try:
        info = await js.stream_info(protocol.TASK_STREAM, subjects_filter=">")
    except NotFoundError:
        return []
    subjects: dict[str, int] = info.state.subjects or {}
    rows = [QueueDepth(s, *_task_of(s), messages=n) for s, n in subjects.items() if n > 0]
    rows.sort(key=lambda r: (-r.messages, r.subject))
    return rows[:MAX_ROWS]


async def consumers(js: JetStreamContext, stream: str) -> list[ConsumerRow]:
    """The durable consumers of ``stream`` (the engine's on the history stream)."""
    try:
        infos = await js.consumers_info(stream)
    except NotFoundError:
        return []
    rows = [
        ConsumerRow(
            name=i.name,
            filter_subject=i.config.filter_subject,
            pending=i.num_pending or 0,
            ack_pending=i.num_ack_pending or 0,
            waiting=i.num_waiting or 0,
        )
        for i in infos[:MAX_ROWS]
    ]
    return sorted(rows, key=lambda r: r.name)


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    """How many messages ``stream`` holds (0 when it does not exist)."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return 0
    return int(info.state.messages)


async def read_workers(js: JetStreamContext) -> list[dict[str, Any]] | None:
    """The live workers' directory entries, or ``None`` when there is no ``workers`` bucket."""
    kv = await open_bucket(js, protocol.KV_WORKERS)
    if kv is None:
        return None
    out: list[dict[str, Any]] = []
    for key in sorted(await list_keys(kv))[:MAX_ROWS]:
        entry = await get_entry(kv, key)
        if entry is None or not entry.value:
            continue  # expired between the listing and the read
        try:
            value = json.loads(entry.value)
        except ValueError:
            log.debug("worker directory entry %s is not JSON; skipped", key)
            continue
        if isinstance(value, dict):
            out.append({"id": key} | value)
    return out
