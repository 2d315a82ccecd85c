"""The Prometheus series of a dagnats process, in the default registry.

One set per process, whatever number of engines or workers it runs (tests run many): the
series are module-level and labelled. Engine series are derived from the events the engine
applies (:func:`observe_applied`, called once per applied event with the state before and
after), so they cost no extra I/O; ``dagnats_tasks_pending`` is read from the work queue
when scraped (:func:`set_pending`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from dagnats.dag.definition.models import StepDef, WorkflowDef
from dagnats.dag.machine.actions import DeadLetter, ScheduleTimer
from dagnats.dag.machine.state import RUN_TERMINAL, STEP_TERMINAL, RunState, StepState
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event

DURATION_BUCKETS_S = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
MAX_PENDING_SERIES = 1000  # task label values kept by dagnats_tasks_pending
MAX_CACHED_SERIES = 10_000  # labelled series remembered by :func:`series`

RUNS_STARTED = Counter(
    "dagnats_runs_started", "Runs started (workflow.started applied).", ["workflow"]
)
RUNS_FINISHED = Counter(
    "dagnats_runs_finished", "Runs that ended, by final status.", ["workflow", "status"]
)
STEPS_FINISHED = Counter(
    "dagnats_steps_finished",
    "Steps that reached a final status (a non-task step is labelled with its type).",
    ["task", "status"],
)
STEP_DURATION = Histogram(
    "dagnats_step_duration_seconds",
    "From a step's first dispatch to its final status, retries included.",
    ["task"],
    buckets=DURATION_BUCKETS_S,
)
STEP_RETRIES = Counter(
    "dagnats_step_retries", "Retries scheduled after a failed attempt.", ["task"]
)
DEAD_LETTERS = Counter(
    "dagnats_dead_letters", "Tasks sent to DEAD_LETTERS (attempts exhausted).", ["task"]
)
TIMER_LAG = Histogram(
    "dagnats_timer_lag_seconds",
    "How late a due timer fired (retry, sleep, timeouts...).",
    ["kind"],
    buckets=LAG_BUCKETS_S,
)
EVENTS_APPLIED = Counter(
    "dagnats_engine_events_applied", "History events the engine applied, by type.", ["type"]
)
TASKS_PENDING = Gauge(
    "dagnats_tasks_pending", "Task messages in the work queue (queued or in flight).", ["task"]
)
WORKER_TASKS = Counter(
    "dagnats_worker_tasks", "Task messages a worker handled, by outcome.", ["task", "outcome"]
)
WORKER_HANDLER_SECONDS = Histogram(
    "dagnats_worker_handler_seconds",
    "Time in the handler, per attempt.",
    ["task"],
    buckets=DURATION_BUCKETS_S,
)


_M = TypeVar("_M", Counter, Histogram)
_series: dict[tuple[Counter | Histogram, tuple[str, ...]], Counter | Histogram] = {}


def series(metric: _M, *labels: str) -> _M:
    """``metric.labels(*labels)``, remembered: prometheus-client checks and converts the
    label values and takes a lock on every ``labels()`` call (~1.4 us, three or four times
    per applied event); a dict hit is ~0.1 us. For metrics that are never ``clear()``-ed
    (not ``TASKS_PENDING``); the memo is emptied when it reaches ``MAX_CACHED_SERIES``."""
    key = (metric, labels)
    child = _series.get(key)
    if child is None:
        if len(_series) >= MAX_CACHED_SERIES:
            _series.clear()
        child = _series[key] = metric.labels(*labels)
    return child  # type: ignore[return-value]  # keyed by the metric: the same type


def step_label(step: StepDef | None) -> str:
    if step is None:
        return "unknown"
    if step.type in ("normal", "agent_loop", "map"):
        return step.task or step.id
    return step.type


def _finished(old: StepState | None, new: StepState) -> bool:
    return new.status in STEP_TERMINAL and (old is None or old.status not in STEP_TERMINAL)


def observe_applied(
    defn: WorkflowDef,
    old: RunState | None,
    event: Event,
    new: RunState,
    actions: Sequence[object],
) -> None:
    """Count what one applied event changed: runs started and ended, steps ended (with
    their duration), retries and dead letters among its actions."""
    series(EVENTS_APPLIED, event.type).inc()
    if event.type == ev.WORKFLOW_STARTED and old is None:
        series(RUNS_STARTED, defn.name).inc()
    if new.status in RUN_TERMINAL and (old is None or old.status not in RUN_TERMINAL):
        series(RUNS_FINISHED, defn.name, new.status).inc()
    by_id = {s.id: s for s in defn.steps}
    old_steps = old.steps if old is not None else {}
    for step_id, state in new.steps.items():
        before = old_steps.get(step_id)
        if before is state or not _finished(before, state):
            continue
        label = step_label(by_id.get(step_id))
        series(STEPS_FINISHED, label, state.status).inc()
        if state.started_at is not None and state.finished_at is not None:
            seconds = (state.finished_at - state.started_at).total_seconds()
            series(STEP_DURATION, label).observe(max(seconds, 0.0))
    for action in actions:
        if isinstance(action, ScheduleTimer) and action.kind == "retry":
            series(STEP_RETRIES, step_label(by_id.get(action.step_id or ""))).inc()
        elif isinstance(action, DeadLetter):
            series(DEAD_LETTERS, action.task or step_label(by_id.get(action.step_id))).inc()


def observe_timer(kind: str, fire_at: datetime) -> None:
    series(TIMER_LAG, kind).observe(max((datetime.now(UTC) - fire_at).total_seconds(), 0.0))


def set_pending(depths: Iterable[tuple[str, int]]) -> None:
    """Replace ``dagnats_tasks_pending`` with (task, messages) read from the work queue."""
    totals: dict[str, int] = {}
    for task, n in depths:
        totals[task] = totals.get(task, 0) + n
    TASKS_PENDING.clear()
    for task, n in sorted(totals.items())[:MAX_PENDING_SERIES]:
        TASKS_PENDING.labels(task).set(n)


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
