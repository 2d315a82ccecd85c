"""Reading KV buckets: one entry, every key, or the entries whose keys match a pattern.

nats-py's ``KeyValue.keys(filters=...)`` watches the *whole* bucket and keeps keys that
contain a filter as a plain substring, so a wildcard filter such as ``"abc.>"`` matches
nothing and every call costs a scan of every key. This watches only the matching subjects
(the server filters) and returns their latest values in one pass.
"""

from __future__ import annotations

import secrets

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

SCAN_TIMEOUT_S = 5.0
MAX_KEYS = 100_000  # the most keys one listing reads (a bounded amount of work per call)
KEY_BATCH = 256


async def scan(
    kv: KeyValue, pattern: str, *, limit: int, timeout_s: float = SCAN_TIMEOUT_S
) -> list[KeyValue.Entry]:
    """Live entries (deleted and purged keys left out) under ``pattern``, at most ``limit``.

    ``pattern`` is a key with NATS wildcards (``"run1.>"``, ``"*.step"``). Raises nats'
    ``TimeoutError`` if the server stops answering in the middle of the scan.
    """
    watcher = await kv.watch(pattern, ignore_deletes=True, inactive_threshold=timeout_s * 2)
    out: list[KeyValue.Entry] = []
    try:
        while len(out) < limit:
            entry = await watcher.updates(timeout=timeout_s)  # type: ignore[no-untyped-call]
            if entry is None:  # the initial values have all been delivered
                break
            out.append(entry)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return out


async def get_entry(
    kv: KeyValue, key: str, *, revision: int | None = None
) -> KeyValue.Entry | None:
    """The entry under ``key`` (at ``revision`` when given), or ``None`` when it is absent
    or deleted: the roles never see nats-py's ``KeyNotFoundError``."""
    try:
        return await kv.get(key, revision=revision)
    except KeyNotFoundError:
        return None


async def list_keys(
    kv: KeyValue, *, limit: int = MAX_KEYS, timeout_s: float = SCAN_TIMEOUT_S
) -> list[str]:
    """The live keys of a bucket, at most ``limit`` of them (``[]`` for an empty one).

    nats-py's ``kv.keys()`` leaves its ordered consumer on the server for 5 minutes after
    each call (a thousand lists in a row pile up a thousand consumers); this reads the keys
    with a named, headers-only pull consumer deleted before it returns, whatever happens.
    """
    js: JetStreamContext = kv._js
    stream: str = kv._stream
    prefix: str = kv._pre
    name = f"dagnats-keys-{secrets.token_hex(8)}"
    config = ConsumerConfig(
        name=name,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.NONE,
        filter_subject=f"{prefix}>",
        headers_only=True,
        mem_storage=True,
        num_replicas=1,
        # Only if this process dies between creating and deleting it.
        inactive_threshold=timeout_s * 2,
    )
    info = await js.add_consumer(stream, config)
    try:
        return await _read_keys(js, stream, name, prefix, min(info.num_pending or 0, limit))
    finally:
        await js.delete_consumer(stream, name)


async def _read_keys(
    js: JetStreamContext, stream: str, consumer: str, prefix: str, pending: int
) -> list[str]:
    keys: list[str] = []
    if pending <= 0:
        return keys
    sub = await js.pull_subscribe_bind(consumer, stream)
    try:
        seen = 0
        while seen < pending:
            # Never ask for more than is left: a short batch would wait out the timeout.
            batch = await sub.fetch(min(KEY_BATCH, pending - seen), timeout=SCAN_TIMEOUT_S)
            for msg in batch:
                seen += 1
                if (msg.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE):
                    continue
                keys.append(msg.subject[len(prefix) :])
    finally:
        await sub.unsubscribe()
    return keys


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
