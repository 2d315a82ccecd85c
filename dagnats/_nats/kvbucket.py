"""One KV bucket of JSON documents keyed by id, with every nats-py error translated.

Used by ``dagnats.WorkflowStore`` (the Beluga seed's NATS workflow store). Each failure is a
:class:`BucketError` naming the KV step that failed (``get``, ``put``, ``keys``...) and the
underlying error, so the store can prefix it with its operation (``store/load: get: ...``).
"""

from __future__ import annotations

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from dagnats._nats.kvscan import scan

_TRANSIENT = (NatsError, TimeoutError, OSError)


class BucketError(Exception):
    """A KV step failed: ``step`` is what was attempted, ``detail`` the underlying error."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class JsonBucket:
    """Values under keys in one bucket; ``open`` creates the bucket or reuses it unchanged."""

    def __init__(self, kv: KeyValue, name: str) -> None:
        self.kv = kv
        self.name = name

    @classmethod
    async def open(cls, js: JetStreamContext, name: str) -> JsonBucket:
        try:
            return cls(await js.key_value(name), name)
        except BucketNotFoundError:
            pass
        except _TRANSIENT as exc:
            raise BucketError("bucket", _detail(exc)) from exc
        try:
            # A concurrent creator with the same (default) configuration is no conflict:
            # the server answers an identical create with the existing bucket.
            return cls(await js.create_key_value(KeyValueConfig(bucket=name)), name)
        except _TRANSIENT as exc:
            raise BucketError("create bucket", _detail(exc)) from exc

    async def put(self, key: str, value: bytes) -> int:
        try:
            return await self.kv.put(key, value)
        except _TRANSIENT as exc:
            raise BucketError("put", _detail(exc)) from exc

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when the key is absent or deleted."""
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        except _TRANSIENT as exc:
            raise BucketError("get", _detail(exc)) from exc
        return entry.value or None

    async def delete(self, key: str) -> bool:
        """Delete ``key``; ``False`` (and nothing written) when it is already absent."""
        if await self.get(key) is None:
            return False
        try:
            await self.kv.delete(key)
        except _TRANSIENT as exc:
            raise BucketError("delete", _detail(exc)) from exc
        return True

    async def keys(self, *, limit: int) -> list[str]:
        """Every live key (``[]`` for an empty bucket), at most ``limit``, sorted.

        A server-filtered watch of the latest values (``kvscan.scan``): nats-py's
        ``keys()`` misses live keys once the bucket's last message is a delete marker.
        """
        try:
            return sorted(entry.key for entry in await scan(self.kv, ">", limit=limit))
        except _TRANSIENT as exc:
            raise BucketError("keys", _detail(exc)) from exc
