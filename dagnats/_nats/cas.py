"""Compare-and-swap on a KV key: the one way dagnats changes a shared record.

Records that several processes change (concurrency slots, rate-limit buckets, snapshots,
idempotency keys, approval tokens) are written with a revision check: ``create`` when the
key must not exist yet (revision 0), ``update(last=revision)`` otherwise. A lost race is a
``None`` result, never an exception the caller has to know the nats-py name of.
"""

from __future__ import annotations

import json
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


async def read(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """The value and revision of ``key``; ``(None, 0)`` when absent or deleted (nats-py
    reports a delete marker as absent, and ``create`` over one succeeds)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, 0
    return entry.value or None, entry.revision or 0


async def write(
    kv: KeyValue, key: str, data: bytes, revision: int, *, ttl_s: float | None = None
) -> int | None:
    """Write ``data`` if ``key`` is still at ``revision`` (0: must not exist).

    Returns the new revision, or ``None`` when another writer got there first. ``ttl_s``
    (a per-key expiry) is for creates only: the server keeps it per message.
    """
    if ttl_s is not None and revision != 0:
        raise ValueError("ttl_s applies to a create (revision 0) only")
    try:
        if revision == 0:
            return await kv.create(key, data, msg_ttl=ttl_s)
        return await kv.update(key, data, last=revision)
    except KeyWrongLastSequenceError:
        return None
    except KeyNotFoundError:
        # nats-py's create, refused because the key existed, reads it to tell a delete
        # marker from a live value; a key that aged out or was purged in between makes
        # that read raise this. The race was lost all the same (seen with three engines
        # taking leases at once: it ended an engine's start).
        return None


async def delete_if(kv: KeyValue, key: str, revision: int) -> bool:
    """Delete ``key`` if it is still at ``revision``; whether it did."""
    try:
        await kv.delete(key, last=revision)
    except KeyWrongLastSequenceError:
        return False
    return True


async def read_json(kv: KeyValue, key: str) -> tuple[dict[str, Any] | None, int]:
    """:func:`read` for JSON object records."""
    raw, revision = await read(kv, key)
    return (json.loads(raw) if raw is not None else None), revision


async def write_json(kv: KeyValue, key: str, value: dict[str, Any], revision: int) -> bool:
    """:func:`write` for JSON object records; whether it won."""
    return await write(kv, key, json.dumps(value).encode(), revision) is not None
