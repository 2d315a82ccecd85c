"""The serving machinery of one ``run()``: feeds, dispatchers, jobs, slots and the drain.

Per served subject one ``PullFeed`` keeps pull requests open on the shared durable and a
dispatcher turns each delivered message into a job. A job waits for a slot (the worker's
``concurrency``, and the task's own if it has one), then the ``Runner`` handles it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from dagnats import protocol
from dagnats._nats.feed import PullFeed
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import Msg, NatsClient
from dagnats.telemetry import metrics
from dagnats.worker.heartbeat import Heartbeater
from dagnats.worker.runner import Outcome, Runner
from dagnats.worker.task import Task

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 5.0  # after the drain deadline: time for cancelled handlers to unwind


@dataclass
class WorkerStats:
    """Counts since the worker was created (``returned`` = given back for redelivery)."""

    completed: int = 0
    failed: int = 0
    continued: int = 0
    returned: int = 0
    poison: int = 0
    unreported: int = 0
    abandoned: int = 0  # tasks of runs that ended meanwhile (cancelled, failed, ...)
    forwarded: int = 0  # sticky runs' tasks sent on to the worker their run is bound to

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class _Binding:
    task: Task[..., Any]
    feed: PullFeed
    dispatcher: asyncio.Task[None] | None = None


class _Job:
    __slots__ = ("binding", "msg", "running", "task")

    def __init__(self, msg: Msg, binding: _Binding) -> None:
        self.msg = msg
        self.binding = binding
        self.running = False
        self.task: asyncio.Task[None] | None = None


class Pool:
    def __init__(
        self,
        runner: Runner,
        beats: Heartbeater,
        stats: WorkerStats,
        *,
        concurrency: int,
        tasks: list[Task[..., Any]],
    ) -> None:
        self._runner = runner
        self._beats = beats
        self._stats = stats
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._task_slots = {
            t.task_name: asyncio.Semaphore(t.concurrency) for t in tasks if t.concurrency
        }
        self._bindings: list[_Binding] = []
        self._jobs: set[_Job] = set()
        self._stopping = False

    @property
    def running(self) -> int:
        return sum(1 for j in self._jobs if j.running)

    def owns(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` is one of this pool's jobs (a handler's own task)."""
        return task is not None and any(j.task is task for j in self._jobs)

    async def serve(self, nc: NatsClient, task: Task[..., Any], group: str | None) -> None:
        """Start pulling ``task.<task>[.<group>]`` from its (already bound) durable."""
        # The per-process bound on delivered-but-unfinished messages of this subject. When
        # it exceeds the free slots, messages wait in the process; the heartbeater covers
        # them from delivery on, so waiting never turns into a redelivery. The alternative
        # (pulling only when a slot is free) would need one feed per slot across all tasks.
        feed = PullFeed(
            nc,
            protocol.TASK_STREAM,
            protocol.task_consumer_name(task.task_name, group),
            max_inflight=task.concurrency or self._concurrency,
        )
        binding = _Binding(task, feed)
        await feed.start()
        binding.dispatcher = asyncio.create_task(
            self._dispatch(binding), name=f"dagnats-dispatch-{feed.name}"
        )
        self._bindings.append(binding)

    async def _dispatch(self, binding: _Binding) -> None:
        while True:
            msg = await binding.feed.get()
            if self._stopping:  # arrived on a pull request issued before the drain
                await self._give_back(msg, binding.feed)
                continue
            self._beats.track(msg)
            job = _Job(msg, binding)
            job.task = asyncio.create_task(self._job(job), name=f"dagnats-job-{binding.feed.name}")
            self._jobs.add(job)

    async def _job(self, job: _Job) -> None:
        binding = job.binding
        task_slot = self._task_slots.get(binding.task.task_name)
        try:
            try:
                # Always the task's slot first, then the worker's: one order, no deadlock.
                if task_slot is not None:
                    await task_slot.acquire()
                try:
                    await self._slots.acquire()
                except BaseException:
                    if task_slot is not None:
                        task_slot.release()
                    raise
            except asyncio.CancelledError:  # drained while waiting for a slot
                await self._nak(job.msg)
                return
            try:
                if self._stopping:
                    await self._nak(job.msg)
                    return
                job.running = True
                outcome = await self._runner.handle(job.msg, binding.task)
                self._stats.count(outcome)
                metrics.series(metrics.WORKER_TASKS, binding.task.task_name, outcome).inc()
            except asyncio.CancelledError:  # the drain deadline passed; the runner gave it back
                self._stats.returned += 1
            except Exception:  # a bug, not a handler failure: keep serving, retry elsewhere
                log.exception("worker: unexpected error handling a message on %s", job.msg.subject)
                await self._nak(job.msg)
            finally:
                self._slots.release()
                if task_slot is not None:
                    task_slot.release()
        finally:
            self._beats.untrack(job.msg)
            self._jobs.discard(job)
            await binding.feed.done()

    async def _nak(self, msg: Msg) -> None:
        self._stats.returned += 1
        try:
            await msg.nak()
        except Exception as exc:  # noqa: BLE001 - the ack timer gives it back instead
            log.debug("nak failed: %s", exc)

    async def _give_back(self, msg: Msg, feed: PullFeed) -> None:
        await self._nak(msg)
        await feed.done()

    async def drain(self, name: str, timeout_s: float, force: asyncio.Event) -> None:
        """Stop pulling, give back what has not started, let running handlers finish
        within ``timeout_s`` (or until ``force``), then cancel the rest and give theirs back.
        """
        self._stopping = True
        for b in self._bindings:
            b.feed.pause()
        waiting = [j for j in self._jobs if not j.running]
        for j in waiting:
            assert j.task is not None
            j.task.cancel()
        jobs = {j.task for j in self._jobs if j.task is not None}
        if len(jobs) > len(waiting):
            log.info(
                "worker %s draining: %d running, %d given back; waiting up to %.0fs",
                name,
                len(jobs) - len(waiting),
                len(waiting),
                timeout_s,
            )
        pending = await _wait(jobs, timeout_s, force)
        if pending:
            log.warning(
                "worker %s: %d handlers still running after the drain timeout; cancelling "
                "them and giving their tasks back",
                name,
                len(pending),
            )
            for t in pending:
                t.cancel()
            await _wait(pending, CANCEL_GRACE_S, None)
        # Feeds wait for their open pull requests to end: let them wait side by side.
        await asyncio.gather(*(b.feed.stop() for b in self._bindings))
        for b in self._bindings:
            if b.dispatcher is not None:
                await stop_task(b.dispatcher)
            for msg in b.feed.drain_queued():
                await self._give_back(msg, b.feed)
        self._bindings = []


async def _wait(
    jobs: set[asyncio.Task[None]], timeout_s: float, force: asyncio.Event | None
) -> set[asyncio.Task[None]]:
    """Wait up to ``timeout_s`` for ``jobs``; ``force`` being set cuts the wait short."""
    pending = {t for t in jobs if not t.done()}
    if not pending:
        return pending
    forced = asyncio.create_task(force.wait()) if force is not None else None
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
