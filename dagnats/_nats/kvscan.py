"""Reading KV buckets: one entry, every key, the entries whose keys match a pattern, or
one key's history.

nats-py's ``KeyValue.keys(filters=...)`` watches the *whole* bucket and keeps keys that
contain a filter as a plain substring, so a wildcard filter such as ``"abc.>"`` matches
nothing and every call costs a scan of every key; and its watchers leave their ordered
consumer on the server for 5 minutes after each call (a thousand lists in a row pile up a
thousand consumers). Here one pass reads only the matching subjects (the server filters),
through a named pull consumer that is deleted before the call returns, whatever happens.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, InvalidKeyError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from dagnats.protocol.limits import LimitError

SCAN_TIMEOUT_S = 5.0
MAX_KEYS = 100_000  # the most keys one listing reads (a bounded amount of work per call)
FETCH_BATCH = 256


async def scan(
    kv: KeyValue, pattern: str, *, limit: int, timeout_s: float = SCAN_TIMEOUT_S
) -> list[KeyValue.Entry]:
    """Live entries (deleted and purged keys left out) under ``pattern``, at most ``limit``.

    ``pattern`` is a key with NATS wildcards (``"run1.>"``, ``"*.step"``). Raises the
    builtin ``TimeoutError`` if the server stops answering in the middle of the scan.
    """
    out: list[KeyValue.Entry] = []
    async for key, msg in _last_per_key(kv, pattern, limit, False, timeout_s):
        out.append(_entry(kv, key, msg))
    return out


async def list_keys(
    kv: KeyValue, *, limit: int = MAX_KEYS, timeout_s: float = SCAN_TIMEOUT_S
) -> list[str]:
    """The live keys of a bucket, at most ``limit`` of them (``[]`` for an empty one)."""
    return [key async for key, _ in _last_per_key(kv, ">", limit, True, timeout_s)]


async def key_history(
    kv: KeyValue, key: str, *, limit: int = 1000, timeout_s: float = SCAN_TIMEOUT_S
) -> list[KeyValue.Entry]:
    """Every value ``key`` still has in the bucket's history, oldest first (delete and purge
    markers left out), at most ``limit``. One pass, no consumer left behind."""
    subject = f"{kv._pre}{key}"
    out: list[KeyValue.Entry] = []
    deliver = DeliverPolicy.ALL
    async with _consumer(kv, subject, False, timeout_s, deliver) as (sub, pending):
        seen = 0
        while seen < min(pending, limit):
            want = min(FETCH_BATCH, pending - seen)
            try:
                batch = await sub.fetch(want, timeout=timeout_s)
            except NatsTimeoutError as exc:
                raise TimeoutError(f"KV history of {kv._name}/{key} stalled") from exc
            for msg in batch:
                seen += 1
                if (msg.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE):
                    continue
                out.append(_entry(kv, key, msg))
    return out[:limit]


def _entry(kv: KeyValue, key: str, msg: Msg) -> KeyValue.Entry:
    """A bucket's stream message as the entry ``kv.get`` would have returned."""
    meta = msg.metadata
    return KeyValue.Entry(
        bucket=kv._name,
        key=key,
        value=msg.data,
        revision=meta.sequence.stream,
        delta=meta.num_pending,
        created=None,
        operation=None,
    )


async def _last_per_key(
    kv: KeyValue, pattern: str, limit: int, headers_only: bool, timeout_s: float
) -> AsyncIterator[tuple[str, Msg]]:
    """The latest message of each live key under ``pattern``, at most ``limit``."""
    prefix: str = kv._pre
    async with _consumer(kv, f"{prefix}{pattern}", headers_only, timeout_s) as (sub, pending):
        seen = found = 0
        while seen < pending and found < limit:
            # Never ask for more than is left: a short batch would wait out the timeout.
            want = min(FETCH_BATCH, pending - seen)
            try:
                batch = await sub.fetch(want, timeout=timeout_s)
            except NatsTimeoutError as exc:
                raise TimeoutError(f"KV scan of {kv._name} stalled") from exc
            for msg in batch:
                seen += 1
                if (msg.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE) or found >= limit:
                    continue
                found += 1
                yield msg.subject[len(prefix) :], msg


@asynccontextmanager
async def _consumer(
    kv: KeyValue,
    subject: str,
    headers_only: bool,
    timeout_s: float,
    deliver: DeliverPolicy = DeliverPolicy.LAST_PER_SUBJECT,
) -> AsyncIterator[tuple[JetStreamContext.PullSubscription, int]]:
    js: JetStreamContext = kv._js
    stream: str = kv._stream
    name = f"dagnats-scan-{secrets.token_hex(8)}"
    config = ConsumerConfig(
        name=name,
        deliver_policy=deliver,
        ack_policy=AckPolicy.NONE,
        filter_subject=subject,
        headers_only=headers_only,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=timeout_s * 2,  # only if this process dies before deleting it
    )
    info = await js.add_consumer(stream, config)
    try:
        sub = await js.pull_subscribe_bind(name, stream)
        try:
            yield sub, info.num_pending or 0
        finally:
            await sub.unsubscribe()
    finally:
        await js.delete_consumer(stream, name)


async def get_entry(
    kv: KeyValue, key: str, *, revision: int | None = None
) -> KeyValue.Entry | None:
    """The entry under ``key`` (at ``revision`` when given), or ``None`` when it is absent
    or deleted: the roles never see nats-py's ``KeyNotFoundError``. A key KV cannot hold is
    a :class:`LimitError` (a 400 at the API), never nats-py's ``InvalidKeyError`` (a 500);
    callers check names with ``protocol.limits`` first, so this is the backstop."""
    try:
        return await kv.get(key, revision=revision)
    except KeyNotFoundError:
        return None
    except InvalidKeyError as exc:
        raise LimitError(f"invalid key {key[:64]!r}: not a KV key") from exc


async def purge_key(kv: KeyValue, key: str) -> None:
    """Remove ``key`` and its history; an absent key is already gone."""
    try:
        await kv.purge(key)
    except KeyNotFoundError:
        return


async def open_bucket(js: JetStreamContext, bucket: str) -> KeyValue | None:
    """The bucket's handle, or ``None`` when it does not exist on this NATS."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return None
