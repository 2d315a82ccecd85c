"""The worker directory: one entry per live worker in the ``workers`` KV bucket.

Observability only (nothing schedules by it): the entry is re-put every 30 s and the
bucket's 60 s max age drops the entry of a worker that died without saying goodbye.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dagnats._nats.tasks import stop_task
from dagnats._nats.types import KeyValue

log = logging.getLogger(__name__)

REFRESH_S = 30.0


class Directory:
    def __init__(
        self, kv: KeyValue, worker_id: str, describe: Callable[[], dict[str, Any]]
    ) -> None:
        self._kv = kv
        self._id = worker_id
        self._describe = describe
        self._task: asyncio.Task[None] | None = None
        self.started_at = datetime.now(UTC).isoformat()

    def entry(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            **self._describe(),
        }

    async def publish(self) -> None:
        try:
            await self._kv.put(self._id, json.dumps(self.entry()).encode())
        except Exception as exc:  # noqa: BLE001 - observability only: never let it stop the worker
            log.warning("worker %s: cannot update the worker directory: %s", self._id, exc)

    async def start(self) -> None:
        await self.publish()
        self._task = asyncio.create_task(self._loop(), name=f"dagnats-directory-{self._id}")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.publish()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        try:
            await self._kv.delete(self._id)
        except Exception as exc:  # noqa: BLE001 - best effort on shutdown: the entry expires
            log.debug("worker %s: directory entry not removed: %s", self._id, exc)
