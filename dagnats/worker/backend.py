"""The NATS side of ``TaskContext``: KV buckets, core publish, heartbeats of one message."""

from __future__ import annotations

import asyncio

from dagnats import protocol
from dagnats._nats.checkpoints import get_checkpoint_raw
from dagnats._nats.signals import put_signal_raw, wait_signal_raw
from dagnats._nats.types import JetStreamContext, KeyValue, Msg, NatsClient
from dagnats.worker.heartbeat import Heartbeater


class KvCache:
    """Bucket handles, looked up once per worker (each lookup is a round trip)."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: dict[str, KeyValue] = {}
        self._lock = asyncio.Lock()

    async def get(self, bucket: str) -> KeyValue:
        kv = self._kv.get(bucket)
        if kv is None:
            async with self._lock:
                kv = self._kv.get(bucket)
                if kv is None:
                    kv = await self._js.key_value(bucket)
                    self._kv[bucket] = kv
        return kv


class NatsBackend:
    """``ContextBackend`` for one task message handled by a worker."""

    def __init__(self, nc: NatsClient, kv: KvCache, beats: Heartbeater, msg: Msg) -> None:
        self._nc = nc
        self._kv = kv
        self._beats = beats
        self._msg = msg

    async def heartbeat(self) -> None:
        await self._beats.beat(self._msg)

    async def put_checkpoint(self, key: str, value: bytes) -> None:
        await (await self._kv.get(protocol.KV_CHECKPOINTS)).put(key, value)

    async def get_checkpoint(self, key: str) -> bytes | None:
        return await get_checkpoint_raw(await self._kv.get(protocol.KV_CHECKPOINTS), key)

    async def publish_stream(self, subject: str, payload: bytes) -> None:
        await self._nc.publish(subject, payload)

    async def wait_signal(self, key: str, timeout_s: float | None) -> bytes:
        return await wait_signal_raw(await self._kv.get(protocol.KV_SIGNALS), key, timeout_s)

    async def put_signal(self, key: str, value: bytes) -> None:
        await put_signal_raw(await self._kv.get(protocol.KV_SIGNALS), key, value)
