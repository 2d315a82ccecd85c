"""``env.faults``: deterministic fault injection against a real environment.

Each fault hits exactly one thing at a point the test chooses, so a test of what dagnats
guarantees under failure is repeatable:

- ``crash_engine(after_events=N)``: the engine applies N more events and dies before acking
  the Nth and without writing its staged snapshots; a fresh engine takes over. Guarantee:
  no event is lost or applied twice; each run ends as it would have, and no step runs again
  because of the crash (its repeated dispatch is deduplicated).
- ``duplicate_delivery(task)``: the next ``task`` message is delivered twice (a copy is
  published past deduplication, as a producer's retry outside the dedup window would).
  Guarantee: both deliveries carry the same ``ctx.idempotency_key`` and attempt; the step
  records one result and the run's outcome is unchanged.
- ``lose_worker(task)``: the worker running the next ``task`` vanishes after its handler ran,
  before it reports or acks; the message comes back at once (as its ack wait running out
  would). Guarantee: the task runs again with the same ``ctx.idempotency_key`` and attempt
  (a lost delivery is not a failed attempt) and the step completes once.
- ``expire_ack(task)``: the next ``task`` message's ack wait runs out while its handler is
  still running, so it is delivered again meanwhile. Guarantee: the two handlers share the
  idempotency key and the step records one result.
- ``kill_server()``: SIGKILL the nats-server, start it again on the same port and store.
  Guarantee: runs in flight complete once it is back, with one recorded result per step; a
  task whose ack the server had not persisted is delivered again (at least once, under the
  same ``ctx.idempotency_key``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from dagnats import protocol
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import Msg, NatsClient, Subscription
from dagnats.engine import Engine
from dagnats.worker import Worker

log = logging.getLogger(__name__)

TAKE_OVER_TIMEOUT_S = 30.0


class FaultTarget(Protocol):
    """What the faults need of their environment (a ``DagnatsEnv``)."""

    engine: Engine | None
    nc: NatsClient

    @property
    def workers(self) -> list[Worker]: ...

    async def start_engine(self, **options: Any) -> Engine: ...

    async def restart_server(self, timeout_s: float = ..., *, kill: bool = ...) -> None: ...


class Faults:
    """The faults of one :class:`DagnatsEnv` (``env.faults``)."""

    def __init__(self, env: FaultTarget) -> None:
        self._env = env
        self.crashes = 0
        """Engine crashes injected so far (each followed by a fresh engine)."""
        self.took_over = asyncio.Event()
        """Set each time a fresh engine has taken over after a crash."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._copiers: list[Subscription] = []

    def crash_engine(self, after_events: int = 1) -> None:
        """The engine dies after applying ``after_events`` more events (see the module)."""
        if after_events < 1:
            raise ValueError("after_events must be >= 1 (the crash comes after an event)")
        engine = self._env.engine
        if engine is None:
            raise RuntimeError("crash_engine needs a running engine (DagnatsEnv engine=True)")
        self.took_over.clear()
        engine.crash_after_events = after_events
        self._spawn(self._take_over(engine))

    async def _take_over(self, engine: Engine) -> None:
        await engine.crashed.wait()
        if self._env.engine is engine:
            self._env.engine = None
        await self._env.start_engine()
        self.crashes += 1
        self.took_over.set()

    async def wait_taken_over(self, timeout_s: float = TAKE_OVER_TIMEOUT_S) -> None:
        """Return once the engine crashed and a fresh one runs."""
        await asyncio.wait_for(self.took_over.wait(), timeout_s)

    async def duplicate_delivery(self, task: str, group: str | None = None) -> None:
        """The next ``task`` message (of ``group``) is delivered twice (see the module)."""
        nc = self._env.nc
        js = nc.jetstream()
        subject = protocol.task_subject(task, group)
        done = asyncio.Event()

        async def copy(msg: Msg) -> None:
            if done.is_set():
                return
            done.set()
            # No Nats-Msg-Id: the copy is a second message with the very same body.
            await js.publish(msg.subject, msg.data)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

        sub = await nc.subscribe(subject, cb=copy)
        self._copiers.append(sub)
        await nc.flush()

    def lose_worker(self, task: str) -> None:
        """The worker running the next ``task`` vanishes after its handler (see the module)."""
        self._worker_for(task).faults.lose.append(task)

    def expire_ack(self, task: str) -> None:
        """The next ``task`` delivery's ack wait runs out mid-handler (see the module)."""
        self._worker_for(task).faults.expire.append(task)

    async def kill_server(self, timeout_s: float = 15.0) -> None:
        """SIGKILL the nats-server and start it again on the same port and store; returns
        once this environment's connection is back (see the module)."""
        await self._env.restart_server(timeout_s, kill=True)

    def _worker_for(self, task: str) -> Worker:
        for worker in self._env.workers:
            if task in worker.tasks:
                return worker
        raise LookupError(f"no worker of this environment serves task {task!r}")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name="dagnats-fault")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            await stop_task(task)
        for sub in self._copiers:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._copiers.clear()
