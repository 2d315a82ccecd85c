"""The engine: durable consumers on the history partitions it leases, advancing runs by event
sourcing. Per event: load the state (the cache alone for a first delivery to a run whose
events it has seen in order, else the cache or the KV snapshot plus the history events it
has not seen: ADR 0017), ``advance()``, execute the actions (publishes with dedup ids),
then ack. The snapshot is written behind (ADR 0005): a running run's new state is staged
in the cache and written with a CAS within 100 ms (1 s under load), coalescing busy runs'
writes; a terminal state is written at once, its result announced on
``dagnats.done.<run_id>`` in the same flush (what ``result()`` waits for) and announced
again once stored (``protocol.ended``, ADR 0016). Events of one run are applied in order
by one actor task; different runs proceed concurrently, bounded by the feeds'
``max_inflight``.

Runs are spread over the history partitions (ADR 0013): the engine consumes the partitions
whose leases it holds (all of them when it runs alone), checks the lease before applying
each event and stamps every snapshot write with the lease's epoch; a partition handed over
is drained first, a partition lost is dropped with its cached runs and its runs' actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from dagnats import protocol
from dagnats._nats.feed import PullFeed
from dagnats._nats.payloads import is_ref
from dagnats._nats.resources import partition_count
from dagnats._nats.state import definition_of, pinned_workflow
from dagnats._nats.stores import ConflictError, FencedError
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import Msg, NatsClient, Subscription
from dagnats.dag.definition.agents import check_agent_routes
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine.advance import advance
from dagnats.dag.machine.state import RunState
from dagnats.engine._parts import (
    EngineParts,
    ensure_partition_consumers,
    open_parts,
    partition_feed,
)
from dagnats.engine.actors import end_actors, wait_actors
from dagnats.engine.catch_up import CatchUp
from dagnats.engine.executor import Executor
from dagnats.engine.leases import PartitionLeases
from dagnats.engine.retention import Retention
from dagnats.engine.run_partitions import RunPartitions
from dagnats.engine.timers import TimerClock
from dagnats.protocol import events as ev
from dagnats.protocol import ids
from dagnats.protocol.events import Event
from dagnats.protocol.partitions import check_engine_id
from dagnats.telemetry import metrics, tracing

log = logging.getLogger(__name__)

MAX_APPLY_TRIES = 6
# An event that fails this many deliveries (each with MAX_APPLY_TRIES tries) is parked in
# DEAD_LETTERS and its run failed, instead of being retried forever.
MAX_EVENT_DELIVERIES = 10
# Errors that come back on every delivery (bad data, a bug), unlike NATS trouble.
LASTING_ERRORS = (ValueError, TypeError, KeyError, AttributeError, AssertionError)
# Deliveries one run's actor may hold: by default its partition feed's whole room (the feed
# bounds them already); lower (``max_queued_per_run``), the newest past it are given back
# (nak with delay) and applied in order from the history by the run's next event (_load).
RELEASE_TIMEOUT_S = 2.0  # a partition handed over waits this long for its runs being applied

FENCED = "fenced"  # _process's error when the run's partition lease is gone

Item = tuple[Msg, Event, PullFeed]  # an event, and the partition feed it came from


class Engine:
    """Run with ``await engine.start()`` / ``await engine.stop()`` or ``async with``."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        max_inflight: int = 1024,
        max_event_deliveries: int = MAX_EVENT_DELIVERIES,
        apply_tries: int = MAX_APPLY_TRIES,
        redeliver_delay_s: float = 2.0,
        clock: TimerClock | None = None,
        retention_s: float | None = None,
        agent_routes: Mapping[str, str] | None = None,
        max_queued_per_run: int | None = None,
        engine_id: str | None = None,
    ) -> None:
        """``clock`` decides when timers are due (the wall clock unless a test gives its
        virtual one: ``dagnats.testing``); ``retention_s`` removes finished runs that long
        after they finished (``None``: kept unless their workflow sets a ``retention``; see
        engine.retention); ``agent_routes`` sends ``agent`` steps to a worker group by their
        ``metadata.role`` (``{"coder": "gpu", "*": "agents"}``; see dag.definition.agents);
        ``max_queued_per_run`` bounds one run's held deliveries (default: a partition feed's
        share of ``max_inflight``); ``engine_id`` names this engine in the partition
        leases (default: a fresh random id); a stable id lets a restarted engine take its
        leases back at once, and must not be shared by two running engines."""
        self.engine_id = check_engine_id(engine_id) if engine_id is not None else ids.worker_id()
        self.agent_routes = check_agent_routes(agent_routes or {})
        self.max_event_deliveries = max_event_deliveries
        self.apply_tries = apply_tries
        self.redeliver_delay_s = redeliver_delay_s
        self.clock = clock
        self.nc = nc
        self.js = nc.jetstream()
        self.max_inflight = max_inflight
        if max_queued_per_run is not None and max_queued_per_run < 1:
            raise ValueError("max_queued_per_run must be >= 1")
        self._queued_bound = max_queued_per_run
        self._history = CatchUp(nc, self._step, self._definition)
        self.given_back = 0
        """Deliveries given back because their run's queue was full (a counter)."""
        self.queue_peak = 0
        """The most deliveries one run's actor has held at once (besides one flush)."""
        self._queues: dict[str, deque[Item | None]] = {}
        self._feeds: dict[int, PullFeed] = {}
        self._intake: dict[int, asyncio.Task[None]] = {}
        self._part_locks: dict[int, asyncio.Lock] = {}  # _changing
        self.partitions = 0
        self._run_parts = RunPartitions(1)  # replaced at start, once the count is known
        self._leases: PartitionLeases | None = None
        self._flush_due: set[str] = set()
        self._actors: set[asyncio.Task[None]] = set()
        self._started = False
        self.applied = 0
        self.ready = asyncio.Event()
        self._parts: EngineParts | None = None
        self._forget_sub: Subscription | None = None
        self.crash_after_events: int | None = None
        """Testing seam (``env.faults.crash_engine``): after this many more events applied,
        the engine dies before acking the last one and without writing staged snapshots."""
        self.crashed = asyncio.Event()
        # Always: a workflow may set its own retention (the sweep is idle until one does).
        self.retention: Retention | None = Retention(nc, retention_s, owns=self.owns)

    @property
    def parts(self) -> EngineParts:
        """The stores, executor, feeds and services of the started engine."""
        if self._parts is None:
            raise RuntimeError("the engine is not started: await engine.start() first")
        return self._parts

    @property
    def executor(self) -> Executor:
        return self.parts.executor

    @property
    def leases(self) -> PartitionLeases:
        if self._leases is None:
            raise RuntimeError("the engine is not started: await engine.start() first")
        return self._leases

    def owns(self, run_id: str) -> bool:
        """Whether this engine holds the lease of ``run_id``'s partition right now."""
        return self._leases is not None and self._leases.holds(self._run_parts.peek(run_id))

    @property
    def run_partitions(self) -> RunPartitions:
        """The partitions of the runs this engine is working on (read-only use)."""
        return self._run_parts

    async def settle(self, timeout_s: float = 10.0) -> bool:
        """Whether the run actors running now ended within ``timeout_s`` (the events they
        held then applied or given back; actors started meanwhile are not waited for)."""
        return not await wait_actors(self._actors, timeout_s)

    def partition(self, run_id: str) -> int:
        return self._run_parts.of(run_id)  # remembered while in hand: engine.run_partitions

    @property
    def _feed_room(self) -> int:
        """Each partition feed's share of ``max_inflight``."""
        return max(1, self.max_inflight // max(1, self.partitions))

    @property
    def max_queued_per_run(self) -> int:
        """The most deliveries one run's actor holds (known once started, unless given)."""
        return self._queued_bound or self._feed_room

    async def start(self) -> None:
        p = self._parts = await open_parts(self.nc, clock=self.clock)
        self.partitions = await partition_count(self.js)
        self._run_parts = RunPartitions(self.partitions)
        self._history.partitions = self.partitions  # its reads use the run's own subject
        await ensure_partition_consumers(self.js, self.partitions)
        self._leases = PartitionLeases(
            self.nc,
            self.partitions,
            self.engine_id,
            acquired=self._acquired,
            release=self._release,
            lost=self._lost,
        )
        p.executor.agent_routes = self._leases.agent_routes = self.agent_routes
        p.runs.fence = lambda run_id: self.leases.epoch(self.partition(run_id))
        await p.timers.start()
        await p.advisories.start()
        await p.correlator.start()
        self._forget_sub = await self.nc.subscribe(protocol.forget_subject("*"), cb=self._on_forget)
        self._started = True
        await self._leases.start()  # the first round takes this engine's share at once
        if self.retention is not None:
            await self.retention.start()
        self.ready.set()
        log.info(
            "engine %s started: partitions %s of %d",
            self.engine_id,
            self._leases.held,
            self.partitions,
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop pulling, let runs being applied finish (bounded), leave the rest unacked,
        write staged snapshots and give the partitions back for other engines."""
        if not self._started or self._parts is None:
            return
        self._started = False
        p = self._parts
        if self.retention is not None:
            await self.retention.stop()
        # Pause every feed first so their open pull requests run out side by side.
        for feed in (*self._feeds.values(), p.timers.feed, p.correlator.feed, p.advisories.feed):
            feed.pause()
        await self._stop_intake(list(self._intake))
        for t in await wait_actors(self._actors, timeout_s):
            t.cancel()
        if self.nc.is_connected:  # cut off, the writes would only time out: the log has it
            for run_id in list(p.runs.dirty):
                await self._flush(run_id)
        await self.leases.stop(release=True)  # drains nothing more: only gives back
        await p.executor.drain()
        if self._forget_sub is not None:
            with contextlib.suppress(Exception):
                await self._forget_sub.unsubscribe()
            self._forget_sub = None
        await p.correlator.stop()
        await p.advisories.stop()
        await p.timers.stop()
        log.info("engine %s stopped: %d events applied", self.engine_id, self.applied)

    def _changing(self, part: int) -> asyncio.Lock:
        """Held while a partition is taken, handed over or dropped: a lease retaken during
        its loss's teardown must not start a feed that the teardown then abandons."""
        return self._part_locks.setdefault(part, asyncio.Lock())

    async def _acquired(self, part: int) -> None:
        """A partition's lease was taken: consume it, with nothing cached from before."""
        async with self._changing(part):
            self._forget_partition(part)
            feed = partition_feed(self.nc, part, self._feed_room, lambda: self.leases.holds(part))
            self._feeds[part] = feed
            await feed.start()
            self._intake[part] = asyncio.create_task(
                self._consume(feed), name=f"dagnats-engine-{part}"
            )

    async def _release(self, part: int) -> None:
        """Hand a partition over: finish its runs being applied (bounded), write what they
        staged, give back what is queued."""
        async with self._changing(part):
            feed = self._feeds.get(part)
            if feed is not None:
                feed.pause()
            await self._stop_intake([part])
            await self._end_actors(part, grace_s=RELEASE_TIMEOUT_S)
            runs = self.parts.runs
            for run_id in self._run_parts.among(list(runs.dirty), part):
                await self._flush(run_id)
            if feed is not None:
                await feed.stop()
                self._feeds.pop(part, None)
            self._forget_partition(part)

    async def _lost(self, part: int) -> None:
        """A partition's lease is gone: act on none of its runs any more, write nothing."""
        async with self._changing(part):
            await self._stop_intake([part])
            await self._end_actors(part, grace_s=0.0)
            feed = self._feeds.pop(part, None)
            if feed is not None:
                await feed.abandon()
            self._forget_partition(part)

    async def _end_actors(self, part: int, *, grace_s: float) -> None:
        """End ``part``'s run actors; their events come again at once (engine.actors)."""
        ours, back = self._run_parts.in_part(part), partial(self._nak_queued, delay=False)
        await end_actors(self._queues, self._actors, ours, back, grace_s=grace_s)

    def _forget_partition(self, part: int) -> None:
        for run_id in self._run_parts.among(self.parts.runs.run_ids(), part):
            self.parts.runs.forget(run_id)
            self._run_parts.forget(run_id)

    async def _stop_intake(self, parts: list[int]) -> None:
        for part in parts:
            task = self._intake.pop(part, None)
            if task is not None:
                await stop_task(task)

    def _crash_due(self) -> bool:
        if self.crash_after_events is None:
            return False
        self.crash_after_events -= 1
        if self.crash_after_events > 0:
            return False
        self.crash_after_events = None
        return True

    async def _die(self) -> None:
        """Stop as a crash would: nothing more applied, acked or written; every event this
        engine holds goes back for redelivery and its leases are deleted (at once rather
        than after the ack wait and the lease TTL, so a test does not wait them out), and
        the staged snapshots are lost with the process."""
        log.warning("engine crash (fault injection): %d events applied", self.applied)
        p = self.parts
        self._started = False
        for task in self._intake.values():
            task.cancel()
        self._intake.clear()
        me = asyncio.current_task()
        held = [item[0] for q in self._queues.values() for item in q if item is not None]
        for actor in self._actors:
            if actor is not me:
                actor.cancel()
        self._queues.clear()
        await self.leases.crash()
        for feed in self._feeds.values():
            await feed.abandon()
        self._feeds.clear()
        for msg in held:
            with contextlib.suppress(Exception):
                await msg.nak()
        if self._forget_sub is not None:
            with contextlib.suppress(Exception):
                await self._forget_sub.unsubscribe()
            self._forget_sub = None
        # The services settle each message as they go: stopping them loses nothing more.
        await asyncio.gather(p.timers.stop(), p.correlator.stop(), p.advisories.stop())
        self.crashed.set()

    async def kill(self) -> None:
        """Testing seam of a killed process (``dagnats.testing.engines``): every task of
        the engine ends where it is; nothing is acked, given back, written or released, so
        its events wait out their ack wait and its leases their TTL. Close the engine's
        connection first, as the death of the process would."""
        self._started = False
        if self._leases is not None:
            await self._leases.stop(release=False)
        tasks = [*self._intake.values(), *self._actors]
        for feed in self._feeds.values():
            feed.pause()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._intake.clear()
        self._queues.clear()
        self._feeds.clear()
        if self._parts is not None:
            p = self._parts
            for loop in (p.timers, p.correlator, p.advisories):
                loop.pause()
            await asyncio.gather(
                p.timers.stop(1.0),
                p.correlator.stop(1.0),
                p.advisories.stop(1.0),
                return_exceptions=True,
            )
        self.crashed.set()

    @property
    def running(self) -> bool:
        """Whether the engine is started and has not ended or crashed."""
        return self._started

    async def _on_forget(self, msg: Msg) -> None:
        run_id = msg.subject.rsplit(".", 1)[-1]
        self.parts.runs.forget(run_id)
        self._history.gaps.pop(run_id, None)
        self._run_parts.forget(run_id)  # an actor still at work asks again (and forgets)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _consume(self, feed: PullFeed) -> None:
        while True:
            msg = await feed.get()
            try:
                seq = msg.metadata.sequence.stream
                event = Event.from_bytes(msg.data, seq)
            except Exception:  # noqa: BLE001 - unreadable: dropped, not redelivered forever
                log.error("dropping an unreadable history message on %s", msg.subject)
                await _finish(msg, feed)
                continue
            if not event.is_input:
                # Records describe decisions already applied: nothing to do.
                await _finish(msg, feed)
                continue
            q = self._queues.get(event.run_id)
            if q is not None and len(q) >= self.max_queued_per_run:
                if event.seq <= self.parts.runs.applied_through(event.run_id):
                    # A copy of one given back before and applied since (from the history):
                    # done, or it would come back again and again.
                    await _finish(msg, feed)
                    continue
                # Only the excess, newest first: what is queued goes on being applied.
                self._history.mark_gap(event.run_id, event.seq)
                self.given_back += 1
                await self._nak(msg, feed)
                continue
            self._enqueue(event.run_id, (msg, event, feed))

    def _enqueue(self, run_id: str, item: Item | None) -> None:
        """Queue work for a run's actor (``None`` = write its staged snapshot)."""
        q = self._queues.get(run_id)
        if q is None:
            q = self._queues[run_id] = deque()
            q.append(item)
            task = asyncio.create_task(self._actor(run_id, q), name=f"run-{run_id}")
            self._actors.add(task)
            task.add_done_callback(self._actors.discard)
        else:
            q.append(item)
            if item is not None:  # a flush marker (at most one per run) is not a delivery
                self.queue_peak = max(self.queue_peak, len(q))

    def _schedule_flush(self, run_id: str) -> None:
        if run_id not in self._flush_due:
            self._flush_due.add(run_id)
            delay = self.parts.runs.write_delay_s()  # longer under load: fewer writes
            asyncio.get_running_loop().call_later(delay, self._flush_now, run_id)

    def _flush_now(self, run_id: str) -> None:
        self._flush_due.discard(run_id)
        if self.crashed.is_set() or not self._started:
            return  # crashed: writes nothing more; stopped: stop() wrote what was staged
        if run_id in self.parts.runs.dirty:
            self._enqueue(run_id, None)

    async def _actor(self, run_id: str, q: deque[Item | None]) -> None:
        part = self.partition(run_id)
        leases = self.leases
        try:
            while q:
                item = q[0]
                if item is None:
                    q.popleft()
                    await self._flush(run_id)
                    continue
                msg, event, feed = item
                if not leases.holds(part):
                    # Not ours any more (handed over, lapsed, paused): whoever holds the
                    # partition now gets these events again; nothing cached is trusted.
                    self.parts.runs.forget(run_id)
                    await self._nak_queued(q, delay=False)
                    return
                with tracing.span(
                    f"dagnats.apply {event.type}",
                    {
                        tracing.RUN_ID: event.run_id,
                        tracing.STEP_ID: event.step_id,
                        tracing.ATTEMPT: event.attempt,
                        tracing.EVENT_TYPE: event.type,
                    },
                    parent=msg.headers,
                    kind="consumer",
                ):
                    ok, error, lasting = await self._process(event, _delivered(msg))
                if ok and self._crash_due():
                    await self._die()  # ``msg`` is still queued: given back, never acked
                    return
                if error == FENCED:
                    await self._nak_queued(q, delay=False)
                    await leases.lose(part, "its lease lapsed or a newer holder wrote a run")
                    return
                q.popleft()
                if ok:
                    await _finish(msg, feed)
                elif lasting and _delivered(msg) >= self.max_event_deliveries:
                    await self.parts.ending.give_up(msg, event, error, _delivered(msg))
                    await feed.done()
                else:
                    # Give it back; it comes again after the delay, in order with later ones
                    # because they are given back too.
                    await self._nak(msg, feed)
                    await self._nak_queued(q)
                    return
        except Exception:
            # Acks and naks are all that can fail here; whatever is left is given back so
            # the feed keeps its room and the run's events come again in order.
            log.exception("run %s: its event queue failed; giving its events back", run_id)
            await self._nak_queued(q)
        finally:
            if self._queues.get(run_id) is q:
                del self._queues[run_id]
                if not self.parts.runs.cached(run_id):
                    self._run_parts.forget(run_id)  # its memo entry would outlive a burst

    async def _flush(self, run_id: str) -> None:
        try:
            await self.parts.runs.flush(run_id)
        except ConflictError:
            log.warning("snapshot of run %s changed under this engine; reloading", run_id)
        except FencedError:
            # The partition's lease is gone: its next holder catches up from the log.
            log.warning("snapshot of run %s not written: its partition is not held", run_id)
            self.parts.runs.forget(run_id)
        except Exception as exc:  # noqa: BLE001 - NATS trouble: the next event or flush writes it
            log.warning("could not write the snapshot of run %s: %s", run_id, exc)
            self._schedule_flush(run_id)

    async def _nak_queued(self, q: deque[Item | None], *, delay: bool = True) -> None:
        while q:  # events may arrive while we nak: give those back too
            item = q.popleft()
            if item is not None:
                if delay:  # still ours: its next event applies these from the history
                    self._history.mark_gap(item[1].run_id, item[1].seq)
                await self._nak(item[0], item[2], delay=delay)

    async def _nak(self, msg: Msg, feed: PullFeed, *, delay: bool = True) -> None:
        with contextlib.suppress(Exception):
            if delay:
                await msg.nak(delay=self.redeliver_delay_s)
            else:
                await msg.nak()
        await feed.done()

    async def _process(self, event: Event, delivered: int = 1) -> tuple[bool, str, bool]:
        """Apply with bounded retries: (applied, last error, whether it will recur).

        Only errors in the event or the state (decoding, validation, a bug) recur on every
        delivery; NATS trouble passes, so it never makes the engine give up on an event.
        """
        delay = 0.05
        fresh = False
        error = ""
        lasting = False
        for attempt in range(1, self.apply_tries + 1):
            try:
                await self._apply(event, fresh=fresh, first_delivery=delivered <= 1)
                self.applied += 1
                return True, "", False
            except FencedError:
                # Another engine holds the partition now: apply nothing, write nothing.
                self.parts.runs.forget(event.run_id)
                return False, FENCED, False
            except ConflictError:
                # Another writer moved the snapshot: reload and apply again.
                self.parts.runs.forget(event.run_id)
                fresh = True
                error, lasting = "the run's snapshot kept changing under this engine", False
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                lasting = isinstance(exc, LASTING_ERRORS)
                log.exception(
                    "applying %s to run %s failed (try %d/%d)",
                    event.type,
                    event.run_id,
                    attempt,
                    self.apply_tries,
                )
                self.parts.runs.forget(event.run_id)
                await asyncio.sleep(delay)  # bounded backoff before a retry of I/O
                delay = min(delay * 2, 1.0)
        return False, error, lasting

    async def _apply(
        self, event: Event, *, fresh: bool = False, first_delivery: bool = True
    ) -> None:
        runs = self.parts.runs
        epoch = self.leases.epoch(self.partition(event.run_id))  # FencedError: not ours
        if (
            event.type == ev.WORKFLOW_STARTED
            and first_delivery
            and not fresh
            and not runs.cached(event.run_id)
        ):
            # A new run has no snapshot: skip the read. (A redelivered start reads it: the
            # run may have moved on, and write-behind would notice only at the flush.)
            run, rev = None, 0
        else:
            # The cache alone is enough only for an event delivered the first time, to a
            # state that has seen the run's events in order under this lease (ADR 0017).
            trusted = first_delivery and runs.in_order(event.run_id) == epoch
            run, rev, handled = await self._load(event, fresh, trusted)
            if handled:
                return
        if run is not None and event.seq <= run.last_seq:
            if run.terminal:
                # A crash may have come between the save and the announcement.
                await self.parts.ending.announce(run)
            return  # applied before; its ack was lost
        if run is not None and run.terminal and event.type != ev.WORKFLOW_RETRY_REQUESTED:
            return  # a late result for a run that has ended: nothing to change or write
        defn = await self._definition(run, event)
        if defn is None:
            return
        new_run, confirm = await self._step(defn, run, event, records_later=True)
        if new_run.terminal:
            await self.parts.ending.store_and_announce(new_run, rev, confirm)
        else:
            # The event log is the truth and is acked only after the actions above: the
            # snapshot can follow a few ms later, coalescing the writes of busy runs.
            runs.stage(new_run, rev)
            if first_delivery:  # every event before it was applied: the next may trust
                runs.mark_in_order(new_run.run_id, epoch)
            self._schedule_flush(new_run.run_id)

    async def _load(
        self, event: Event, fresh: bool, trusted: bool
    ) -> tuple[RunState | None, int, bool]:
        """The state to apply ``event`` to and its KV revision, caught up with the history
        it has not seen (unless ``trusted``); the flag says nothing is left to do."""
        cached = self.parts.runs.cached(event.run_id) and not fresh and trusted
        run, rev = await self.parts.runs.load(event.run_id, fresh=fresh)
        if (cached and event.run_id not in self._history.gaps) or event.type == ev.WORKFLOW_STARTED:
            return run, rev, False
        # Not in this engine's cache: the snapshot may lag the log (staged writes lost in a
        # crash, an event given back): apply what it is missing. Events given back come
        # again in any order, so the history is applied through the newest of them.
        before = run
        run = await self._history.catch_up(run, event)
        if run is None:
            log.warning("event %s for unknown run %s ignored", event.type, event.run_id)
            return None, rev, True
        if run.terminal and not (before is not None and before.terminal):
            # The catch-up itself finished the run; a retry reopens it: apply it below.
            rev = await self.parts.ending.ended(await self._definition(run, event), run, rev)
            return run, rev, event.type != ev.WORKFLOW_RETRY_REQUESTED
        if run is not before and not run.terminal:
            # The state moved on (perhaps through ``event`` itself: then nothing follows).
            self.parts.runs.stage(run, rev)
            self._schedule_flush(run.run_id)
        return run, rev, False

    async def _step(
        self, defn: WorkflowDef, run: RunState | None, event: Event, *, records_later: bool
    ) -> tuple[RunState, Callable[[], Awaitable[None]] | None]:
        """One event applied with its effects: the same for a live event and a caught-up one."""
        if event.type == ev.STEP_COMPLETED and isinstance(event.data, dict):
            await self._resolve_for_map(defn, event)
        elif event.type == ev.WORKFLOW_RETRY_REQUESTED and run is not None and run.terminal:
            # Its end's purge of timers must be over before the retry arms new ones.
            await self.parts.executor.run_actions.cleaned(run.run_id)
        new_run, actions = advance(defn, run, event)
        metrics.observe_applied(defn, run, event, new_run, actions)
        tracing.annotate({tracing.WORKFLOW: defn.name})
        confirm = None
        if actions:
            confirm = await self.parts.executor.execute(
                actions, records_later=records_later and new_run.terminal
            )
        ended = new_run.terminal and not (run is not None and run.terminal)
        await self.parts.ending.release_slots(defn, event, new_run, ended)
        return new_run, confirm

    async def _resolve_for_map(self, defn: WorkflowDef, event: Event) -> None:
        """A map step fans out over its input array, so a referenced array is fetched."""
        output = event.data.get("output")
        if not is_ref(output) or event.step_id is None:
            return
        if any(s.type == "map" and event.step_id in s.depends_on for s in defn.steps):
            event.data = {**event.data, "output": await self.parts.payloads.resolve(output)}

    async def _definition(self, run: RunState | None, event: Event) -> WorkflowDef | None:
        defn = await definition_of(self.parts.defs, run, [event])
        if defn is None:
            name, revision = pinned_workflow(run, [event])
            log.error("run %s: workflow %r revision %s not found", event.run_id, name, revision)
        return defn


async def _finish(msg: Msg, feed: PullFeed) -> None:
    await feed.ack_done(msg)  # with the refill's pull request when one is due (+NXT)


def _delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # noqa: BLE001 - not a JetStream message: cannot happen on a pull feed
        return 1
