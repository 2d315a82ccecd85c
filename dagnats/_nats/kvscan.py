"""Reading KV buckets: one entry, every key, or the entries whose keys match a pattern.

nats-py's ``KeyValue.keys(filters=...)`` watches the *whole* bucket and keeps keys that
contain a filter as a plain substring, so a wildcard filter such as ``"abc.>"`` matches
nothing and every call costs a scan of every key. This watches only the matching subjects
(the server filters) and returns their latest values in one pass.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

SCAN_TIMEOUT_S = 5.0


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


async def list_keys(kv: KeyValue) -> list[str]:
    """Every live key of a bucket (``[]`` for an empty one, where nats-py raises)."""
    try:
        keys: list[str] = await kv.keys()
    except NoKeysError:
        return []
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
