"""The working context of one ``advance`` call: copy-on-write state, actions, graph facts.

``advance`` must never mutate its arguments, and it is the engine's hot path, so the run is
copied shallowly and each step (and map instance) is copied only when first written. Nothing
mutates a payload (input/output/error) in place: those are replaced, so sharing them between
the old and the new state is safe.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dagnats.dag.definition.graph import dependents, handler_steps, sink_steps, topological_order
from dagnats.dag.definition.models import StepDef, WorkflowDef
from dagnats.dag.machine.actions import Action, RecordEvent, ScheduleTimer, TimerKind
from dagnats.dag.machine.state import ItemState, RunState, StepState
from dagnats.protocol import dedup
from dagnats.protocol.events import Event

# A step (or map instance) in these states holds one of ``concurrency.max_steps`` slots: from
# its dispatch until it finishes for good, including while it waits for a retry or the next
# agent-loop iteration, so a retry never queues behind steps that started after it.
_HOLDING_WAITS = frozenset({"retry", "loop_delay"})


Start = Callable[["Ctx", str], None]
# (ctx, step id, attempt the timer was armed for)
Deadline = Callable[["Ctx", str, "int | None"], None]
# (ctx, step id, reason) -> the child run told to cancel, if any
Cancel = Callable[["Ctx", str, str], "str | None"]
# (ctx, step id, output the worker returned)
Complete = Callable[["Ctx", str, Any], None]


@dataclass(frozen=True)
class StepKind:
    """How the machine treats one step type."""

    start: Start
    """Begin the step once its input is resolved (and it was not skipped)."""
    redispatch: Start
    """Send the attempt a step-level retry was waiting for."""
    worker_task: bool = False
    """A worker handler does its work (it has a task name and attempts on TASK_QUEUES)."""
    holds_slot: bool = False
    """The step as a whole holds one of the run's ``max_steps`` slots while it runs."""
    fans_out: bool = False
    """Its attempts are per item of its input array (map)."""
    iterates: bool = False
    """A handler may return ``Continue`` for another iteration (agent_loop)."""
    sets_timers: bool = False
    """It may schedule timers of its own (sleeps, wait timeouts, loop delays, deadlines)."""
    retries_only_when_asked: bool = False
    """Only the step's own ``retry`` applies, never the workflow's default policy."""
    on_deadline: Deadline | None = None
    """Handles its ``step_timeout`` timer itself (else the running attempt times out)."""
    on_cancel: Cancel | None = None
    """Undoes what the running step holds outside the run when it is cancelled."""
    on_complete: Complete | None = None
    """Takes the worker's output itself (planner: materialise the fragment, then complete)."""


@dataclass(frozen=True, slots=True)
class Graph:
    """Facts about a definition that ``advance`` needs on every event, computed once."""

    steps: Mapping[str, StepDef]
    order: tuple[str, ...]  # topological, ties in definition order
    dependents: Mapping[str, tuple[str, ...]]
    handlers: frozenset[str]
    sinks: tuple[str, ...]
    task_steps: tuple[str, ...]  # normal / agent_loop: one worker task at a time
    map_steps: tuple[str, ...]
    kinds: Mapping[str, StepKind]  # step id -> the table entry of its type


_GRAPHS: OrderedDict[int, tuple[WorkflowDef, Graph]] = OrderedDict()
_GRAPH_CACHE_SIZE = 256


def graph_of(defn: WorkflowDef, table: Mapping[str, StepKind]) -> Graph:
    """The :class:`Graph` of a definition, cached by identity (definitions are never mutated).

    The cache keeps the definition itself next to its graph, so an id reused by a new object
    after the old one was collected can never return a stale graph.
    """
    key = id(defn)
    hit = _GRAPHS.get(key)
    if hit is not None and hit[0] is defn:
        _GRAPHS.move_to_end(key)
        return hit[1]
    steps = {s.id: s for s in defn.steps}
    order = topological_order(defn)
    graph = Graph(
        steps=steps,
        order=order,
        dependents=dependents(defn),
        handlers=handler_steps(defn),
        sinks=sink_steps(defn),
        task_steps=tuple(s for s in order if table[steps[s].type].holds_slot),
        map_steps=tuple(s for s in order if table[steps[s].type].fans_out),
        kinds={s: table[steps[s].type] for s in order},
    )
    _GRAPHS[key] = (defn, graph)
    if len(_GRAPHS) > _GRAPH_CACHE_SIZE:
        _GRAPHS.popitem(last=False)
    return graph


def aware(ts: datetime) -> datetime:
    """Event times without a zone are read as UTC (comparisons need one convention)."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def ns_delta(ns: int) -> timedelta:
    return timedelta(microseconds=ns / 1000)


def event_data(event: Event) -> dict[str, Any]:
    """An event's data as a dict (anything else reads as empty: events come from outside)."""
    return event.data if isinstance(event.data, dict) else {}


def first_undispatched(items: list[ItemState]) -> int:
    """Index of the first map instance never dispatched (instances go out in index order)."""
    return bisect_left(items, 1, key=lambda it: 1 if it.attempts == 0 else 0)


class Ctx:
    """State and output of one ``advance`` call."""

    def __init__(
        self,
        defn: WorkflowDef,
        graph: Graph,
        run: RunState,
        event: Event,
        table: Mapping[str, StepKind] | None = None,
        base: WorkflowDef | None = None,
    ) -> None:
        # The run's full definition: the registered one (``base_defn``) plus the steps its
        # planners added; both change when a planner's fragment joins the run.
        self.defn = defn
        self.base_defn = base if base is not None else defn
        self.g = graph
        # The step table, to rebuild the graph when a planner adds steps to the run.
        self.table = table
        self.event = event
        ts = aware(event.ts)
        # A run's clock never goes backwards, even if a worker's clock is behind the engine's.
        self.now = max(ts, aware(run.updated_at)) if run.updated_at is not None else ts
        new = run.model_copy()
        new.steps = dict(run.steps)
        new.last_seq = max(run.last_seq, event.seq)
        new.updated_at = self.now
        self.run = new
        self.actions: list[Action] = []
        self._copied: set[str] = set()
        self._items_copied: set[str] = set()
        self._item_copied: set[tuple[str, int]] = set()
        # Steps that just finished (completed / skipped / handler done): their dependents
        # are examined by ``settle`` with a work queue, never by recursion, so a long chain
        # of steps that finish at once cannot exhaust the stack.
        self.finished: deque[str] = deque()
        self.finished_any = False
        self.freed = False  # a slot was released: slot-waiting work may go out
        self._inflight: int | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    # --- copy-on-write access ----------------------------------------------------------

    def st(self, sid: str) -> StepState:
        """Read a step's state (do not write to it: use :meth:`mut`)."""
        return self.run.steps[sid]

    def mut(self, sid: str) -> StepState:
        """A step's state, copied on first write within this call."""
        if sid not in self._copied:
            self.run.steps[sid] = self.run.steps[sid].model_copy()
            self._copied.add(sid)
        return self.run.steps[sid]

    def set_items(self, sid: str, items: list[ItemState]) -> None:
        st = self.mut(sid)
        st.items = items
        self._items_copied.add(sid)
        self._item_copied.update((sid, i) for i in range(len(items)))

    def mut_item(self, sid: str, index: int) -> ItemState:
        st = self.mut(sid)
        assert st.items is not None
        if sid not in self._items_copied:
            st.items = list(st.items)
            self._items_copied.add(sid)
        if (sid, index) not in self._item_copied:
            st.items[index] = st.items[index].model_copy()
            self._item_copied.add((sid, index))
        return st.items[index]

    # --- actions -------------------------------------------------------------------------

    def emit(self, action: Action) -> None:
        self.actions.append(action)

    def record(
        self,
        type_: str,
        data: Any = None,
        *,
        sid: str | None = None,
        attempt: int | None = None,
        iteration: int | None = None,
        item: int | None = None,
    ) -> None:
        """Append an engine record; its dedup id derives from what it describes."""
        # After a retry, records get ids of their own: a step that begins again may describe
        # the same attempt number (one that failed before it was ever dispatched).
        retry = self.run.retries
        key = dedup.record_id(self.run_id, type_, sid, attempt, iteration, item, retry=retry)
        event = Event(
            type=type_,
            run_id=self.run_id,
            step_id=sid,
            attempt=attempt,
            iteration=iteration,
            item=item,
            ts=self.now,
            data=data,
        )
        self.emit(RecordEvent(event=event, dedup_id=key))

    def timer(
        self,
        kind: TimerKind,
        fire_at: datetime,
        data: dict[str, Any],
        *,
        sid: str | None = None,
        attempt: int = 0,
        iteration: int = 0,
        item: int | None = None,
    ) -> None:
        """Schedule a timer of the run (no ``sid``) or of one attempt of a step."""
        retry = self.run.retries if sid is None else 0
        dedup_id = dedup.timer_id(self.run_id, kind, sid, attempt, iteration, item, retry=retry)
        self.emit(
            ScheduleTimer(
                run_id=self.run_id,
                kind=kind,
                step_id=sid,
                fire_at=fire_at,
                data=data,
                dedup_id=dedup_id,
            )
        )

    def attempt_timer(
        self,
        kind: TimerKind,
        fire_at: datetime,
        sid: str,
        attempt: int,
        iteration: int,
        item: int | None,
    ) -> None:
        """A timer of one attempt of a step whose data names that attempt (retry, step
        timeout, sticky fallback): the handler checks it is still the current one."""
        data: dict[str, Any] = {"attempt": attempt, "iteration": iteration}
        if item is not None:
            data["item"] = item
        self.timer(kind, fire_at, data, sid=sid, attempt=attempt, iteration=iteration, item=item)

    # --- transitions shared by every module ----------------------------------------------

    def finished_step(self, sid: str) -> None:
        """A step reached a state its dependents (or its handler's owner) can act on."""
        self.finished.append(sid)
        self.finished_any = True

    def is_task(self, sid: str) -> bool:
        return self.g.kinds[sid].worker_task

    def kind(self, sid: str) -> StepKind:
        """How the machine treats step ``sid`` (its type's entry in the step table)."""
        return self.g.kinds[sid]

    # --- concurrency.max_steps -----------------------------------------------------------

    @property
    def max_steps(self) -> int | None:
        c = self.defn.concurrency
        # 0 is Go's "unlimited", like leaving it out.
        return c.max_steps if c is not None and c.max_steps else None

    def _count_inflight(self) -> int:
        n = 0
        for sid in self.g.task_steps:
            st = self.run.steps[sid]
            if st.status in ("queued", "running") or (
                st.status == "pending" and st.waiting in _HOLDING_WAITS
            ):
                n += 1
        for sid in self.g.map_steps:
            st = self.run.steps[sid]
            if st.status == "running" and st.items:
                n += first_undispatched(st.items) - st.items_done
        return n

    def slot_free(self) -> bool:
        limit = self.max_steps
        if limit is None:
            return True
        if self._inflight is None:
            self._inflight = self._count_inflight()
        return self._inflight < limit

    def take_slot(self) -> None:
        if self._inflight is not None:
            self._inflight += 1

    def release_slot(self) -> None:
        # Recounted on next use: releases happen in several shapes (one step, a whole map,
        # every step at cancel) and a recount is simpler than keeping each one exact.
        self._inflight = None
        self.freed = True
