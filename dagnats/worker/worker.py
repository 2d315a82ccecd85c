"""``Worker``: registers task handlers and serves them from durable pull consumers.

Per served subject (``task.<task>`` and ``task.<task>.<group>``) one ``PullFeed`` keeps pull
requests open on the shared durable and a dispatcher turns each delivered message into a
job. Jobs wait for a slot (the worker's ``concurrency``, and the task's own if it has
one), then the ``Runner`` handles them. Shutdown drains: stop pulling, give back what has
not started, let running handlers finish within ``drain_timeout_s``, give back the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, ParamSpec, TypeVar, overload

import anyio
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from dagnats._nats.feed import PullFeed
from dagnats._nats.resources import setup_resources
from dagnats.dag import wire
from dagnats.errors import DagnatsError
from dagnats.worker.backend import KvCache
from dagnats.worker.consumers import ACK_WAIT_S, consumer_config, ensure_consumer
from dagnats.worker.directory import Directory
from dagnats.worker.heartbeat import Heartbeater
from dagnats.worker.runner import Outcome, Runner
from dagnats.worker.task import DurationLike, Task, check_name

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_URL_ENV = "DAGNATS_NATS_URL"
_CANCEL_GRACE_S = 5.0  # after the drain deadline: time for cancelled handlers to unwind


@dataclass
class WorkerStats:
    """Counts since the worker was created (``returned`` = given back for redelivery)."""

    completed: int = 0
    failed: int = 0
    continued: int = 0
    returned: int = 0
    poison: int = 0
    unreported: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class _Binding:
    """One served subject: its feed and dispatcher."""

    task: Task[..., Any]
    group: str | None
    feed: PullFeed
    dispatcher: asyncio.Task[None] | None = None


class _Job:
    __slots__ = ("binding", "msg", "running", "task")

    def __init__(self, msg: Msg, binding: _Binding) -> None:
        self.msg = msg
        self.binding = binding
        self.running = False
        self.task: asyncio.Task[None] | None = None


class Worker:
    """Serve ``@worker.task()`` handlers from NATS; ``await worker.run()`` or ``async with``.

    ``concurrency`` bounds handlers running at once across all tasks; ``groups`` adds the
    ``task.<task>.<group>`` subjects (plus the ungrouped one unless ``serve_ungrouped`` is
    false); ``ack_wait_s`` is the consumers' ack deadline (heartbeats every third of it).
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
        if drain_timeout_s < 0:
            raise ValueError("drain_timeout_s must not be negative")
        if ack_wait_s <= 0:
            raise ValueError("ack_wait_s must be positive")
        self.nats_url: str = nats_url or os.environ.get(NATS_URL_ENV) or DEFAULT_NATS_URL
        self.id: str = wire.worker_id()
        self.name: str = name or self.id
        self.concurrency = concurrency
        self.drain_timeout_s = drain_timeout_s
        self.serve_ungrouped = serve_ungrouped
        self.ack_wait_s = ack_wait_s
        self.handle_signals = handle_signals
        self.tasks: dict[str, Task[..., Any]] = {}
        self.stats = WorkerStats()
        self.ready = asyncio.Event()
        self._connection = connection
        self._stop_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._done: asyncio.Event | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._bg: asyncio.Task[None] | None = None
        self._jobs: set[_Job] = set()
        self._bindings: list[_Binding] = []
        self._stopping = False
        # Made per run() (asyncio primitives must belong to the loop that runs the worker).
        self._sem = asyncio.Semaphore(concurrency)
        self._task_sems: dict[str, asyncio.Semaphore] = {}
        self._beats: Heartbeater | None = None
        self._runner: Runner | None = None
        self._directory: Directory | None = None

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
        return sum(1 for j in self._jobs if j.running)

    async def run(self) -> None:
        """Serve until ``stop()``, cancellation or SIGINT/SIGTERM; then drain and return.

        A ``stop()`` that arrives before ``run()`` starts makes this run return at once.
        """
        if self._done is not None:
            raise RuntimeError(f"worker {self.name} is already running")
        if not self.tasks:
            raise ValueError(f"worker {self.name} has no tasks: register them with @worker.task()")
        self._done = asyncio.Event()
        self._run_task = asyncio.current_task()
        restore_signals = self._install_signal_handlers()
        nc: NatsClient | None = None
        try:
            if self._stop_requested.is_set():
                return
            nc = self._connection or await self._connect()
            try:
                await self._start(nc)
                await self._stop_requested.wait()
            finally:
                await self._shutdown()
        finally:
            restore_signals()
            if nc is not None and self._connection is None:
                with contextlib.suppress(Exception):
                    await nc.drain()
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
        if any(j.task is current for j in self._jobs):
            return  # a handler stopping its own worker cannot wait for its own drain
        await done.wait()

    async def __aenter__(self) -> Worker:
        self._bg = asyncio.create_task(self.run(), name=f"dagnats-worker-{self.name}")
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({self._bg, ready}, return_when=asyncio.FIRST_COMPLETED)
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
        async def on_error(exc: Exception) -> None:
            log.warning("worker %s: NATS error: %s", self.name, exc)

        async def on_disconnect() -> None:
            if not self._stopping:  # closing at shutdown disconnects too: not news
                log.warning("worker %s: disconnected from NATS; reconnecting", self.name)

        async def on_reconnect() -> None:
            log.info("worker %s: reconnected to NATS", self.name)

        try:
            return await nats.connect(
                self.nats_url,
                name=f"dagnats-worker-{self.name}",
                max_reconnect_attempts=-1,  # a worker outlives NATS restarts
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )
        except Exception as exc:
            raise DagnatsError(
                f"worker {self.name}: cannot connect to NATS at {self.nats_url}: {exc}"
            ) from exc

    async def _start(self, nc: NatsClient) -> None:
        js = nc.jetstream()
        self._stopping = False
        await setup_resources(js)  # idempotent: a worker may start before the engine
        self._sem = asyncio.Semaphore(self.concurrency)
        self._task_sems = {
            t.task_name: asyncio.Semaphore(t.concurrency)
            for t in self.tasks.values()
            if t.concurrency
        }
        beats = self._beats = Heartbeater(self.ack_wait_s / 3)
        beats.start()
        kv = KvCache(js)
        self._runner = Runner(
            nc,
            worker_id=self.id,
            worker_name=self.name,
            beats=beats,
            kv=kv,
            limiter=anyio.CapacityLimiter(self.concurrency),
        )
        groups: list[str | None] = [*self.groups]
        if self.serve_ungrouped or not self.groups:
            groups.append(None)
        served = [(t, g) for t in self.tasks.values() for g in groups]
        await asyncio.gather(
            *(
                ensure_consumer(js, consumer_config(t.task_name, g, self.ack_wait_s))
                for t, g in served
            )
        )
        self._bindings = []
        for t, g in served:
            # Per-process bound on delivered-but-unfinished messages of this subject.
            # Messages beyond the worker's concurrency wait for a slot; the heartbeater
            # covers them from delivery on, so waiting never causes a redelivery.
            feed = PullFeed(
                nc,
                wire.TASK_STREAM,
                wire.task_consumer_name(t.task_name, g),
                max_inflight=t.concurrency or self.concurrency,
            )
            binding = _Binding(t, g, feed)
            await feed.start()
            binding.dispatcher = asyncio.create_task(
                self._dispatch(binding), name=f"dagnats-dispatch-{feed.name}"
            )
            self._bindings.append(binding)
        directory = self._directory = Directory(
            await kv.get(wire.KV_WORKERS), self.id, self._describe
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

    def _describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tasks": sorted(self.tasks),
            "groups": list(self.groups),
            "concurrency": self.concurrency,
            "inflight": self.inflight,
            "stats": asdict(self.stats),
        }

    async def _dispatch(self, binding: _Binding) -> None:
        beats = self._beats
        assert beats is not None
        while True:
            msg = await binding.feed.get()
            if self._stopping:  # arrived on a pull request issued before the drain
                await self._give_back(msg, binding.feed)
                continue
            beats.track(msg)
            job = _Job(msg, binding)
            job.task = asyncio.create_task(self._job(job), name=f"dagnats-job-{binding.feed.name}")
            self._jobs.add(job)

    async def _job(self, job: _Job) -> None:
        binding = job.binding
        runner, beats = self._runner, self._beats
        assert runner is not None and beats is not None
        task_sem = self._task_sems.get(binding.task.task_name)
        try:
            try:
                if task_sem is not None:
                    await task_sem.acquire()
                try:
                    await self._sem.acquire()
                except BaseException:
                    if task_sem is not None:
                        task_sem.release()
                    raise
            except asyncio.CancelledError:  # drained while waiting for a slot
                await self._nak(job.msg)
                return
            try:
                if self._stopping:
                    await self._nak(job.msg)
                    return
                job.running = True
                self.stats.count(await runner.handle(job.msg, binding.task))
            except asyncio.CancelledError:  # the drain deadline passed; runner gave it back
                self.stats.returned += 1
            finally:
                self._sem.release()
                if task_sem is not None:
                    task_sem.release()
        finally:
            beats.untrack(job.msg)
            self._jobs.discard(job)
            await binding.feed.done()

    async def _nak(self, msg: Msg) -> None:
        self.stats.returned += 1
        try:
            await msg.nak()
        except Exception as exc:  # the ack timer gives it back instead
            log.debug("nak failed: %s", exc)

    async def _give_back(self, msg: Msg, feed: PullFeed) -> None:
        await self._nak(msg)
        await feed.done()

    async def _shutdown(self) -> None:
        """Drain; safe after a partial start (whatever was created is stopped)."""
        self._stopping = True
        self.ready.clear()
        for b in self._bindings:
            b.feed.pause()
        waiting = [j for j in self._jobs if not j.running]
        for j in waiting:
            assert j.task is not None
            j.task.cancel()
        jobs = {j.task for j in self._jobs if j.task is not None}
        running = len(jobs) - len(waiting)
        if running:
            log.info(
                "worker %s draining: %d running, %d given back; waiting up to %.0fs",
                self.name,
                running,
                len(waiting),
                self.drain_timeout_s,
            )
        pending = await self._wait_jobs(jobs, self.drain_timeout_s, force=True)
        if pending:
            log.warning(
                "worker %s: %d handlers still running after the drain timeout; cancelling them "
                "and giving their tasks back",
                self.name,
                len(pending),
            )
            for t in pending:
                t.cancel()
            await self._wait_jobs(pending, _CANCEL_GRACE_S, force=False)
        for b in self._bindings:
            await b.feed.stop()
            if b.dispatcher is not None:
                b.dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await b.dispatcher
            for msg in b.feed.drain_queued():
                await self._give_back(msg, b.feed)
        self._bindings = []
        if self._beats is not None:
            await self._beats.stop()
            self._beats = None
        if self._directory is not None:
            await self._directory.stop()
            self._directory = None
        self._runner = None

    async def _wait_jobs(
        self, jobs: set[asyncio.Task[None]], timeout_s: float, *, force: bool
    ) -> set[asyncio.Task[None]]:
        """Wait up to ``timeout_s`` for ``jobs``; a second SIGINT/SIGTERM cuts it short."""
        pending = {t for t in jobs if not t.done()}
        if not pending:
            return pending
        forced = asyncio.create_task(self._force.wait()) if force else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while pending and (remaining := deadline - loop.time()) > 0:
                waitset: set[asyncio.Task[Any]] = {*pending, *([forced] if forced else [])}
                await asyncio.wait(waitset, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending = {t for t in pending if not t.done()}
                if forced is not None and forced.done():
                    break
        finally:
            if forced is not None:
                forced.cancel()
        return pending

    def _install_signal_handlers(self) -> Callable[[], None]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        installed: list[tuple[signal.Signals, Any]] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not supported here
                continue
            installed.append((sig, previous))

        def restore() -> None:
            for sig, previous in installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
                    if previous is not None:
                        signal.signal(sig, previous)

        return restore

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop_requested.is_set():
            log.warning("worker %s: %s again; cancelling running handlers", self.name, sig.name)
            self._force.set()
            return
        log.info("worker %s: %s received; draining", self.name, sig.name)
        self._stop_requested.set()


def _caller_locals(frame: FrameType | None) -> dict[str, Any] | None:
    # Only a function's locals help resolve annotations; a module's are its globals.
    if frame is None or frame.f_code.co_name == "<module>":
        return None
    return dict(frame.f_locals)
