"""The ``engine_leases`` bucket: partition leases and engine heartbeats (ADR 0013).

A lease is a key whose latest write is younger than the bucket's max age
(``LEASE_TTL_S``): taken with a create (only if absent), renewed with a compare-and-swap on
its revision, given back with a delete on its revision. Expiry needs no writer: the server
drops a key whose last write aged out, which is how a dead engine's partitions become free.
The epoch of a lease is the revision it was created at.

The whole bucket is read with one batched direct get (the latest message of every key):
a KV watch would not report expiry, and nats-py's key listing leaves a consumer behind per
call (``kvscan``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from dagnats._nats import cas
from dagnats._nats.kvscan import open_bucket, scan
from dagnats.protocol import partitions as parts

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 2.0
MAX_KEYS = 4 * parts.MAX_PARTITIONS + 1024  # partitions and heartbeats: bounded


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The bucket at one moment: who holds which partition, and which engines are alive."""

    holders: dict[int, str]
    epochs: dict[int, int]
    revisions: dict[int, int]
    """partition -> the KV revision of its lease's latest write (the base of a CAS)."""
    engines: dict[str, dict[str, object]]
    """engine id -> its heartbeat (pid, host, started)."""


async def scan_view(js: JetStreamContext) -> LeaseView:
    """The same view through a short-lived consumer, for status pages (no connection
    needed beyond ``js``); empty when the bucket does not exist."""
    holders: dict[int, str] = {}
    epochs: dict[int, int] = {}
    revisions: dict[int, int] = {}
    engines: dict[str, dict[str, object]] = {}
    kv = await open_bucket(js, parts.KV_LEASES)
    if kv is not None:
        for entry in await scan(kv, ">", limit=MAX_KEYS):
            read_entry(entry.key, entry.value or b"", entry.revision or 0, holders, epochs, engines)
            if entry.key.startswith("partition.") and entry.key[10:].isdigit():
                revisions[int(entry.key[10:])] = entry.revision or 0
    return LeaseView(holders=holders, epochs=epochs, revisions=revisions, engines=engines)


async def read_view(nc: NatsClient, *, timeout_s: float = READ_TIMEOUT_S) -> LeaseView:
    """Every live lease and heartbeat, from one batched direct get."""
    prefix = f"$KV.{parts.KV_LEASES}."
    api = f"$JS.API.DIRECT.GET.KV_{parts.KV_LEASES}"
    req = {"multi_last": [f"{prefix}>"], "batch": MAX_KEYS}
    holders: dict[int, str] = {}
    epochs: dict[int, int] = {}
    revisions: dict[int, int] = {}
    engines: dict[str, dict[str, object]] = {}
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(api, json.dumps(req).encode(), reply=inbox)
        for _ in range(MAX_KEYS + 1):
            try:
                msg = await sub.next_msg(timeout=timeout_s)
            except NatsTimeoutError as exc:
                raise TimeoutError("reading the engine leases timed out") from exc
            hdrs = msg.headers or {}
            if hdrs.get("Status") is not None:  # 204: end of the batch; 404: empty bucket
                break
            if hdrs.get(KV_OP) in (KV_DEL, KV_PURGE):
                continue
            key = hdrs.get("Nats-Subject", "")[len(prefix) :]
            revision = int(hdrs.get("Nats-Sequence", "0"))
            read_entry(key, msg.data, revision, holders, epochs, engines)
            if key.startswith("partition.") and key[10:].isdigit():
                revisions[int(key[10:])] = revision
    finally:
        await sub.unsubscribe()
    return LeaseView(holders=holders, epochs=epochs, revisions=revisions, engines=engines)


def read_entry(
    key: str,
    data: bytes,
    revision: int,
    holders: dict[int, str],
    epochs: dict[int, int],
    engines: dict[str, dict[str, object]],
) -> None:
    try:
        body = json.loads(data)
    except ValueError:
        log.warning("ignoring an unreadable lease record %r", key)
        return
    """Add one record of the bucket (``key`` without the bucket prefix) to the maps."""
    kind, _, name = key.partition(".")
    if kind == "partition" and name.isdigit() and isinstance(body, dict):
        holders[int(name)] = str(body.get("engine"))
        epochs[int(name)] = int(body.get("epoch") or revision)
    elif kind == "engine" and isinstance(body, dict):
        engines[name] = body


def lease_body(engine_id: str, epoch: int = 0) -> bytes:
    return json.dumps({"engine": engine_id, "epoch": epoch}).encode()


async def acquire(kv: KeyValue, p: int, engine_id: str) -> int | None:
    """Take partition ``p`` if nobody holds it: its epoch (revision), or ``None``."""
    return await cas.write(kv, parts.lease_key(p), lease_body(engine_id), 0)


async def adopt(kv: KeyValue, p: int, engine_id: str, revision: int) -> int | None:
    """Take back a lease still under this engine's id from an earlier process of it (a
    restart with a stable id): a CAS on ``revision`` with a new epoch (the new revision),
    so whatever the earlier process might still write is fenced off."""
    return await cas.write(kv, parts.lease_key(p), lease_body(engine_id), revision)


async def renew(kv: KeyValue, p: int, engine_id: str, epoch: int, revision: int) -> int | None:
    """Renew a lease still at ``revision``: the new revision, or ``None`` when it was lost
    (expired, or taken by another engine after it expired)."""
    return await cas.write(kv, parts.lease_key(p), lease_body(engine_id, epoch), revision)


async def release(kv: KeyValue, p: int, revision: int) -> bool:
    """Give a lease back (only if still ours, at ``revision``)."""
    return await cas.delete_if(kv, parts.lease_key(p), revision)


async def heartbeat(kv: KeyValue, engine_id: str, info: dict[str, object]) -> None:
    await kv.put(parts.engine_key(engine_id), json.dumps(info).encode())


async def forget_engine(kv: KeyValue, engine_id: str) -> None:
    await kv.delete(parts.engine_key(engine_id))
