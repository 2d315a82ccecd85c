"""``fake_context``: a ``TaskContext`` without NATS, for unit-testing handlers.

Checkpoints, signals and stream chunks live in memory and go through the same encoding
and size rules as on a worker, so a handler that passes here fails there for no reason of
format. Inspect what it did through ``ctx.checkpoints``, ``ctx.signals``, ``ctx.streamed``
and ``ctx.heartbeats``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dagnats import protocol
from dagnats._nats.checkpoints import encode_value
from dagnats.protocol import dedup, keys
from dagnats.protocol.keys import checkpoint_key, signal_key
from dagnats.worker.context import TaskContext


class MemoryBackend:
    """``ContextBackend`` over dicts and a list; shareable by several fake contexts."""

    def __init__(self) -> None:
        self.checkpoints: dict[str, bytes] = {}
        self.signals: dict[str, bytes] = {}
        self.streamed: list[tuple[str, bytes]] = []
        self.heartbeats = 0
        self._changed: asyncio.Event | None = None

    async def heartbeat(self) -> None:
        self.heartbeats += 1

    async def put_checkpoint(self, key: str, value: bytes) -> None:
        self.checkpoints[key] = value

    async def get_checkpoint(self, key: str) -> bytes | None:
        return self.checkpoints.get(key)

    async def publish_stream(self, subject: str, payload: bytes) -> None:
        self.streamed.append((subject, payload))

    async def wait_signal(self, key: str, timeout_s: float | None) -> bytes:
        async with asyncio.timeout(timeout_s):
            while key not in self.signals:
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()
        return self.signals[key]

    async def put_signal(self, key: str, value: bytes) -> None:
        self.signals[key] = value
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


class FakeContext(TaskContext):
    """A ``TaskContext`` on a ``MemoryBackend``, with views of what the handler did."""

    def __init__(self, message: protocol.TaskMessage, backend: MemoryBackend) -> None:
        super().__init__(message, backend)
        self.backend = backend

    @property
    def heartbeats(self) -> int:
        return self.backend.heartbeats

    @property
    def checkpoints(self) -> dict[str, Any]:
        """Decoded checkpoints by KV key (``<run_id>.<step_id>[.<item>]``)."""
        return {k: json.loads(v) for k, v in self.backend.checkpoints.items()}

    @property
    def signals(self) -> dict[str, Any]:
        """Decoded signals by KV key (``<run_id>.<name>``)."""
        return {k: json.loads(v) for k, v in self.backend.signals.items()}

    @property
    def streamed(self) -> list[Any]:
        """The ``data`` of each ``put_stream`` chunk of this step, in order."""
        subject = protocol.stream_subject(self.run_id, self.step_id)
        return [json.loads(p)["data"] for s, p in self.backend.streamed if s == subject]


def fake_context(
    input: Any = None,
    *,
    run_id: str = "test-run",
    step_id: str = "test-step",
    task: str | None = None,
    workflow: str = "test-workflow",
    attempt: int = 1,
    iteration: int = 0,
    item: int | None = None,
    idempotency_key: str | None = None,
    checkpoint: Any = None,
    signals: dict[str, Any] | None = None,
    backend: MemoryBackend | None = None,
) -> FakeContext:
    """A context for calling a handler directly: ``await greet(fake_context("Ada"), "Ada")``.

    ``checkpoint`` pre-loads what ``load_checkpoint()`` returns; ``signals`` pre-sends
    signals of this run by name; pass one ``backend`` to several contexts to share state.
    """
    message = protocol.TaskMessage(
        run_id=run_id,
        workflow=workflow,
        step_id=step_id,
        task=task or step_id,
        attempt=attempt,
        iteration=iteration,
        item=item,
        input=input,
        idempotency_key=idempotency_key or keys.idempotency_key(run_id, step_id, item, None),
        dedup_id=dedup.task_id(run_id, step_id, attempt, iteration, item),
    )
    store = backend or MemoryBackend()
    if checkpoint is not None:
        key = checkpoint_key(run_id, step_id, item)
        store.checkpoints[key] = encode_value(checkpoint, "checkpoint")
    for name, data in (signals or {}).items():
        store.signals[signal_key(run_id, name)] = encode_value(data, f"signal {name!r}")
    return FakeContext(message, store)
