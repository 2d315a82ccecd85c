"""``Worker``: registers task handlers and serves them from durable pull consumers.

The worker owns the lifecycle (connect, resources, consumers, signals, directory, drain);
the per-run serving machinery is a ``Pool`` (``pool.py``) and each message is handled by
the ``Runner`` (``runner.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from types import FrameType
from typing import Any, ParamSpec, TypeVar, overload

import anyio

from dagnats import protocol
from dagnats._nats.consumers import ensure_consumer
from dagnats._nats.resources import check_replicas, setup_resources
from dagnats._nats.types import NatsClient
from dagnats.errors import DagnatsError, NatsUnavailableError
from dagnats.protocol.durations import DurationLike
from dagnats.worker import shutdown_signals
from dagnats.worker.backend import KvCache
from dagnats.worker.consumers import ACK_WAIT_S, consumer_config
from dagnats.worker.directory import Directory
from dagnats.worker.heartbeat import Heartbeater
from dagnats.worker.pool import Pool, WorkerStats
from dagnats.worker.runner import DeliveryFaults, Runner
from dagnats.worker.startup import close_worker, connect_worker, start_through_outages
from dagnats.worker.sticky import own_consumer_config
from dagnats.worker.task import Task, check_name

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_URL_ENV = "DAGNATS_NATS_URL"


class Worker:
    """Serve ``@worker.task()`` handlers from NATS; ``await worker.run()`` or ``async with``.

    ``concurrency`` bounds handlers running at once across all tasks; ``groups`` adds the
    ``task.<task>.<group>`` subjects (plus the ungrouped one unless ``serve_ungrouped`` is
    false); ``ack_wait_s`` is the consumers' ack deadline (heartbeats every third of it);
    ``replicas`` is for streams it has to create on a cluster (existing ones keep theirs);
    a start that NATS interrupts (a restart, a leader election) is tried again for up to
    ``start_timeout_s`` before ``run()`` raises ``NatsUnavailableError``.
    """

    def __init__(
        self,
        nats_url: str | None = None,
        *,
        connection: NatsClient | None = None,
        concurrency: int = 16,
        groups: Sequence[str] = (),
        name: str | None = None,
        drain_timeout_s: float = 30.0,
        serve_ungrouped: bool = True,
        ack_wait_s: float = ACK_WAIT_S,
        handle_signals: bool = True,
        report_started_after_s: float = 0.05,
        replicas: int | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if isinstance(groups, str):
            raise TypeError("groups must be a sequence of group names, not a string")
        self.groups: tuple[str, ...] = tuple(check_name(g, "worker group") for g in groups)
        if len(set(self.groups)) != len(self.groups):
            raise ValueError(f"duplicate worker groups in {list(self.groups)}")
        if not self.groups and not serve_ungrouped:
            raise ValueError("serve_ungrouped=False needs at least one group, or nothing is served")
        _check_seconds(
            drain_timeout_s=drain_timeout_s, report_started_after_s=report_started_after_s
        )
        _check_seconds(positive=True, ack_wait_s=ack_wait_s, start_timeout_s=start_timeout_s)
        # How long run() keeps setting up through a NATS outage (a restart, a leader
        # election) before it raises NatsUnavailableError.
        self.start_timeout_s = start_timeout_s
        # A handler still running after this long gets a step.started event (0 = always).
        self.report_started_after_s = report_started_after_s
        # Replicas of the streams and buckets it creates if missing (None: one, and existing
        # ones are never changed; see _nats.resources). On a cluster, give the cluster's.
        self.replicas = check_replicas(replicas)
        self.nats_url: str = nats_url or os.environ.get(NATS_URL_ENV) or DEFAULT_NATS_URL
        self.id: str = protocol.worker_id()
        self.name: str = name or self.id
        self.concurrency = concurrency
        self.drain_timeout_s = drain_timeout_s
        self.serve_ungrouped = serve_ungrouped
        self.ack_wait_s = ack_wait_s
        self.handle_signals = handle_signals
        self.tasks: dict[str, Task[..., Any]] = {}
        self.stats = WorkerStats()
        self.faults = DeliveryFaults()
        """Faults a test arms on this worker's deliveries (``dagnats.testing``'s env.faults)."""
        self.ready = asyncio.Event()
        self._connection = connection
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._done: asyncio.Event | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._bg: asyncio.Task[None] | None = None
        self._pool: Pool | None = None
        self._runner: Runner | None = None
        self._beats: Heartbeater | None = None
        self._directory: Directory | None = None
        self._stopping = False
        # Set when the connection was closed for good: run() then raises instead of
        # returning, so `dagnats worker` exits non-zero and a supervisor restarts it.
        self._lost: str | None = None

    # ---- registration ----------------------------------------------------------------

    @overload
    def task(self, name: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        name: str | None = None,
        *,
        timeout: DurationLike | None = None,
        concurrency: int | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        name: Any = None,
        *,
        timeout: DurationLike | None = None,
        concurrency: int | None = None,
    ) -> Any:
        """Register a handler ``(ctx)`` or ``(ctx, input)``; the name defaults to the function's.

        ``timeout`` (``"10m"``, seconds or ``timedelta``) applies when the task message
        carries no deadline; ``concurrency`` bounds this task's running handlers.
        """
        if callable(name):  # bare @worker.task
            return self._register(name, None, None, None, _caller_locals(sys._getframe(1)))

        def decorate(fn: Callable[P, R]) -> Task[P, R]:
            return self._register(fn, name, timeout, concurrency, _caller_locals(sys._getframe(1)))

        return decorate

    def _register(
        self,
        fn: Callable[P, R],
        name: str | None,
        timeout: DurationLike | None,
        concurrency: int | None,
        localns: dict[str, Any] | None,
    ) -> Task[P, R]:
        if self._done is not None:
            raise RuntimeError(f"worker {self.name}: register tasks before run()")
        task = Task(fn, name=name, timeout=timeout, concurrency=concurrency, localns=localns)
        if task.task_name in self.tasks:
            raise ValueError(f"task {task.task_name!r} is already registered on this worker")
        self.tasks[task.task_name] = task
        return task

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Handlers running now."""
        return self._pool.running if self._pool is not None else 0

    async def run(self) -> None:
        """Serve until ``stop()``, cancellation or SIGINT/SIGTERM; then drain and return.

        A ``stop()`` that arrives before ``run()`` starts makes this run return at once.
        """
        if self._done is not None:
            raise RuntimeError(f"worker {self.name} is already running")
        if not self.tasks:
            raise ValueError(f"worker {self.name} has no tasks: register them with @worker.task()")
        self._done = asyncio.Event()
        self._lost = None
        self._run_task = asyncio.current_task()
        restore_signals = self._install_signal_handlers()
        nc: NatsClient | None = None
        try:
            if self._stop_requested.is_set():
                return
            nc = self._connection or await self._connect()
            try:
                await start_through_outages(
                    f"worker {self.name}",
                    functools.partial(self._start, nc),
                    self._shutdown,
                    self._stop_requested,
                    self.start_timeout_s,
                )
                await self._stop_requested.wait()
            finally:
                await self._shutdown()
            if self._lost is not None:
                raise NatsUnavailableError(self._lost)
        finally:
            restore_signals()
            if nc is not None and self._connection is None:
                with contextlib.suppress(Exception):
                    await close_worker(nc)
            s = self.stats
            extra = "".join(
                f", {n} {label}"
                for n, label in ((s.continued, "continued"), (s.poison, "poison"))
                if n
            )
            log.info(
                "worker %s stopped: %d completed, %d failed, %d returned%s",
                self.name,
                s.completed,
                s.failed,
                s.returned,
                extra,
            )
            done = self._done
            # Fresh events: a worker object may run again, even in another event loop.
            self.ready = asyncio.Event()
            self._stop_requested = asyncio.Event()
            self._force = asyncio.Event()
            self._done = None
            self._run_task = None
            done.set()

    async def stop(self) -> None:
        """Ask ``run()`` to drain and stop; returns once it has (unless called by a handler)."""
        self._stop_requested.set()
        done = self._done
        current = asyncio.current_task()
        if done is None or current is self._run_task:
            return
        if self._pool is not None and self._pool.owns(current):
            return  # a handler stopping its own worker cannot wait for its own drain
        await done.wait()

    async def __aenter__(self) -> Worker:
        self._bg = asyncio.create_task(self.run(), name=f"dagnats-worker-{self.name}")
        ready = asyncio.create_task(self.ready.wait())
        try:
            await asyncio.wait({self._bg, ready}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while starting: leave nothing running
            ready.cancel()
            self._bg.cancel()
            raise
        if not ready.done():
            ready.cancel()
            self._bg.result()  # raises what stopped the worker
            raise DagnatsError(f"worker {self.name} stopped before it was ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        bg, self._bg = self._bg, None
        if bg is not None:
            await bg

    # ---- internals -------------------------------------------------------------------

    async def _connect(self) -> NatsClient:
        def closed(why: str) -> None:
            self._lost = why
            self._stop_requested.set()

        return await connect_worker(self.name, self.nats_url, lambda: self._stopping, closed)

    async def _start(self, nc: NatsClient) -> None:
        js = nc.jetstream()
        self._stopping = False
        # Idempotent: a worker may start before the engine. Never lowers replicas.
        await setup_resources(js, self.replicas)
        beats = self._beats = Heartbeater(self.ack_wait_s / 3)
        beats.start()
        kv = KvCache(js)
        runner = Runner(
            nc,
            worker_id=self.id,
            worker_name=self.name,
            beats=beats,
            kv=kv,
            limiter=anyio.CapacityLimiter(self.concurrency),
            report_started_after_s=self.report_started_after_s,
            faults=self.faults,
        )
        self._runner = runner  # before listen(): a failed start closes what it opened
        await runner.listen()
        pool = self._pool = Pool(
            runner,
            beats,
            self.stats,
            concurrency=self.concurrency,
            tasks=list(self.tasks.values()),
        )
        groups = self._groups_bound()
        served = [(t, g) for t in self.tasks.values() for g in groups]
        await asyncio.gather(
            *(
                ensure_consumer(
                    js, protocol.TASK_STREAM, consumer_config(t.task_name, g, self.ack_wait_s)
                )
                for t, g in served
            )
        )
        own = protocol.sticky_group(self.id)
        await asyncio.gather(
            *(
                ensure_consumer(
                    js,
                    protocol.TASK_STREAM,
                    own_consumer_config(t.task_name, self.id, self.ack_wait_s),
                )
                for t in self.tasks.values()
            )
        )
        for t, g in served:
            await pool.serve(nc, t, g)
        for t in self.tasks.values():
            await pool.serve(nc, t, own)  # sticky runs bound to this worker
        directory = self._directory = Directory(
            await kv.get(protocol.KV_WORKERS), self.id, self._describe
        )
        await directory.start()
        self.ready.set()
        log.info(
            "worker %s serving %s (%d subjects, concurrency %d)",
            self.name,
            ", ".join(sorted(self.tasks)),
            len(served),
            self.concurrency,
        )

    def _groups_bound(self) -> list[str | None]:
        """The groups this worker binds each task to; ``None`` is the ungrouped subject."""
        groups: list[str | None] = [*self.groups]
        if self.serve_ungrouped or not self.groups:
            groups.append(None)
        return groups

    def _describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tasks": sorted(self.tasks),
            "groups": list(self.groups),
            # the exact (task, group) pairs bound: "why is my run stuck" reads them
            "serves": [[t, g] for t in sorted(self.tasks) for g in self._groups_bound()],
            # each task's input schema: `dagnats approve` checks an approver's data with it
            "inputs": {n: s for n, t in self.tasks.items() if (s := t.input_schema)},
            "concurrency": self.concurrency,
            "inflight": self.inflight,
            "stats": asdict(self.stats),
        }

    async def _shutdown(self) -> None:
        """Drain; safe after a partial start (whatever was created is stopped)."""
        self._stopping = True
        self.ready.clear()
        if self._pool is not None:
            await self._pool.drain(self.name, self.drain_timeout_s, self._force)
            self._pool = None
        if self._runner is not None:
            await self._runner.close()
            self._runner = None
        if self._beats is not None:
            await self._beats.stop()
            self._beats = None
        if self._directory is not None:
            await self._directory.stop()
            self._directory = None

    def _install_signal_handlers(self) -> Callable[[], None]:
        if not self.handle_signals:
            return lambda: None
        return shutdown_signals.install(self._on_signal)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop_requested.is_set():
            log.warning("worker %s: %s again; cancelling running handlers", self.name, sig.name)
            self._force.set()
            return
        log.info("worker %s: %s received; draining", self.name, sig.name)
        self._stop_requested.set()


def _check_seconds(*, positive: bool = False, **options: float) -> None:
    for option, value in options.items():
        if value < 0 or (positive and value == 0):
            raise ValueError(f"{option} must {'be positive' if positive else 'not be negative'}")


def _caller_locals(frame: FrameType | None) -> dict[str, Any] | None:
    # Only a function's locals help resolve annotations; a module's are its globals.
    if frame is None or frame.f_code.co_name == "<module>":
        return None
    return dict(frame.f_locals)
