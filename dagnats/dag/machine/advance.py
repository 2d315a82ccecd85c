"""``advance``: the pure heart of the engine. (definition, run state, event) -> (state, actions).

Rules that hold for every event (the full semantics are in
``docs/architecture/0003-advance-semantics.md``):

- Pure: no I/O, no clock, no randomness. Time is the event's ``ts``; a run's clock never goes
  backwards (``now = max(event.ts, run.updated_at)``), so a worker whose clock lags cannot
  schedule a timer in the past. Arguments are never mutated.
- Only *input* events (``events.INPUT_TYPES``) change a run. Records the engine wrote about
  its own decisions, and unknown types, are no-ops, so replaying a history reproduces the
  state without re-deciding anything.
- A terminal run ignores every event and is returned as is (the same object).
- Any other event sets ``last_seq = max(last_seq, event.seq)`` and ``updated_at``.
- Worker results and timers name the attempt (and iteration / map item) they belong to; one
  that does not match the current attempt is stale and changes nothing else, which makes
  duplicates and late arrivals harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from dagnats.dag.definition.flow import priority_offset_s
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.machine import _failure, _redrive, _steps, _waits
from dagnats.dag.machine._context import Ctx, aware, event_data, graph_of, ns_delta
from dagnats.dag.machine._planner import with_plans
from dagnats.dag.machine._table import STEP_KINDS
from dagnats.dag.machine.actions import Action, AdmitRun, RegisterWaiter
from dagnats.dag.machine.inputs import InputError, resolve_any_match
from dagnats.dag.machine.retry import clamp_retry_after, retry_delay_ns
from dagnats.dag.machine.state import ItemState, ParentRef, RunState, StepError, StepState
from dagnats.protocol.durations import format_duration
from dagnats.protocol.events import (
    CANCEL_WAITER_PREFIX,
    CHILD_COMPLETED,
    CHILD_FAILED,
    STEP_APPROVED,
    STEP_COMPLETED,
    STEP_CONTINUE,
    STEP_FAILED,
    STEP_REJECTED,
    STEP_STARTED,
    STEP_WAIT_MATCHED,
    TIMER_FIRED,
    WORKER_LOST,
    WORKFLOW_ADMITTED,
    WORKFLOW_CANCEL_REQUESTED,
    WORKFLOW_PENDING,
    WORKFLOW_RETRY_REQUESTED,
    WORKFLOW_STARTED,
    Event,
)

retry_refusal = _redrive.refusal  # why a run cannot be retried in place (None: it can)

__all__ = ["advance", "initial_state", "retry_delay_ns", "retry_refusal"]


def initial_state(defn: WorkflowDef, event: Event) -> RunState:
    """The state of a run that ``workflow.started`` creates, before any step begins.

    ``event.data``: ``{"input", "revision"?, "parent"?: {"run_id", "step_id", "depth"},
    "depth"?, "idempotency_key"?, "rerun_of"?}``. A detached child has no ``parent``
    (nobody waits for it) but still carries ``depth``, so nesting stays bounded.
    """
    data = event_data(event)
    parent: ParentRef | None = None
    if isinstance(data.get("parent"), dict):
        try:
            parent = ParentRef.model_validate(data["parent"])
        except ValidationError:
            parent = None
    depth = parent.depth if parent is not None else (_int(data.get("depth")) or 0)
    key = data.get("idempotency_key")
    root = data.get("control_root")
    ts = aware(event.ts)
    return RunState(
        run_id=event.run_id,
        workflow=defn.name,
        revision=_int(data.get("revision")),
        status="running",
        input=data.get("input"),
        steps={s.id: StepState() for s in defn.steps},
        created_at=ts,
        updated_at=ts,
        last_seq=event.seq,
        parent=parent,
        depth=max(0, depth),
        idempotency_key=key if isinstance(key, str) else None,
        rerun_of=rerun_of if isinstance(rerun_of := data.get("rerun_of"), str) else None,
        control_root=root if isinstance(root, str) else None,
    )


def advance(defn: WorkflowDef, run: RunState | None, event: Event) -> tuple[RunState, list[Action]]:
    """Apply one history event to a run; return the new state and what the shell must do.

    ``run`` is ``None`` only for a run's first event, which must be ``workflow.started``
    (anything else raises ``ValueError``: there is no run to apply it to).
    """
    if run is None:
        if event.type != WORKFLOW_STARTED:
            raise ValueError(
                f"run {event.run_id!r} has no state; its first event must be "
                f"{WORKFLOW_STARTED!r}, got {event.type!r}"
            )
        first = initial_state(defn, event)
        ctx = Ctx(defn, graph_of(defn, STEP_KINDS), first, event, STEP_KINDS)
        _start(ctx)
    elif run.terminal:
        # Only a retry reopens an ended run, and only the run's next one (see _redrive).
        if event.type != WORKFLOW_RETRY_REQUESTED or not _redrive.applies(run, event_data(event)):
            return run, []
        full = with_plans(defn, run)  # the steps its planners added resume like the others
        ctx = Ctx(full, graph_of(full, STEP_KINDS), run, event, STEP_KINDS, base=defn)
        _redrive.on_retry(ctx)
    else:
        full = with_plans(defn, run)
        ctx = Ctx(full, graph_of(full, STEP_KINDS), run, event, STEP_KINDS, base=defn)
        if not ctx.run.checkpoints and may_have_checkpointed(event):
            ctx.run.checkpoints = True
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(ctx, event)
    _steps.settle(ctx)
    return ctx.run, ctx.actions


# --- helpers -----------------------------------------------------------------------------


_RESULTS = frozenset({STEP_COMPLETED, STEP_FAILED, STEP_CONTINUE})


def may_have_checkpointed(event: Event) -> bool:
    """Whether the attempt ``event`` ends may have stored a checkpoint: its result says
    ``checkpointed``, or it ended without a result (lost, timed out)."""
    if event.type in _RESULTS:
        return isinstance(event.data, dict) and event.data.get("checkpointed") is True
    if event.type == WORKER_LOST:
        return True
    return event.type == TIMER_FIRED and event_data(event).get("kind") == "step_timeout"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _step(ctx: Ctx, event: Event) -> tuple[str, StepState] | None:
    sid = event.step_id
    if sid is None or sid not in ctx.g.steps:
        return None
    return sid, ctx.st(sid)


def _current_attempt(
    ctx: Ctx, sid: str | None, attempt: int | None, iteration: int | None, item: int | None
) -> tuple[str, int | None, StepState | ItemState] | None:
    """The worker task an event or timer names, if it is the one in flight; else None."""
    if sid is None or sid not in ctx.g.steps or not ctx.is_task(sid) or attempt is None:
        return None
    st = ctx.st(sid)
    if ctx.kind(sid).fans_out:
        if item is None or st.status != "running" or st.items is None:
            return None
        if not 0 <= item < len(st.items):
            return None
        it = st.items[item]
        if it.status in ("queued", "running") and it.attempts == attempt:
            return sid, item, it
        return None
    if (
        st.status in ("queued", "running")
        and st.attempts == attempt
        and (iteration or 0) == st.iteration
    ):
        return sid, None, st
    return None


def _from_event(ctx: Ctx, event: Event) -> tuple[str, int | None, StepState | ItemState] | None:
    return _current_attempt(ctx, event.step_id, event.attempt, event.iteration, event.item)


def _step_error(sid: str, data: dict[str, Any], default_type: str) -> StepError:
    message = data.get("error")
    if not isinstance(message, str) or not message:
        message = str(message) if message else "the task failed without a message"
    err_type = data.get("error_type")
    retryable = data.get("retryable", True)
    return StepError(
        message=message,
        type=err_type if isinstance(err_type, str) and err_type else default_type,
        retryable=retryable if isinstance(retryable, bool) else True,
        step_id=sid,
    )


# --- start -------------------------------------------------------------------------------


def max_runs(defn: WorkflowDef) -> int | None:
    """The workflow's run limit: ``concurrency.max_runs`` (a singleton is the API's job)."""
    return defn.concurrency.max_runs if defn.concurrency is not None else None


def _start(ctx: Ctx, *, admitted: bool = False) -> None:
    limit = max_runs(ctx.defn)
    if limit is not None and not admitted:
        # Wait for a slot; ``workflow.admitted`` starts the run (the shell keeps the order).
        ctx.run.status = "pending"
        ctx.record(WORKFLOW_PENDING, {"max_runs": limit})
        ctx.emit(
            AdmitRun(
                run_id=ctx.run_id,
                workflow=ctx.defn.name,
                max_runs=limit,
                priority_offset_s=priority_offset_s(ctx.defn, ctx.run.input),
                arrived_at=ctx.run.created_at,
            )
        )
        return
    ctx.run.status = "running"
    # A cancel event counts from the moment the run was started, not from when its waiter
    # happens to be registered (after the engine picked the start up, or after admission):
    # the look-back reaches back to the run's creation.
    since_start = _ns_between(ctx.run.created_at or ctx.now, ctx.now)
    for i, rule in enumerate(ctx.defn.cancel_on):
        try:
            match, as_text = resolve_any_match(
                f"cancel_on[{i}]", rule.match, ctx.run.input, ctx.run
            )
        except InputError:
            continue  # the run input lacks the field: this rule cannot match this run
        ctx.emit(
            RegisterWaiter(
                run_id=ctx.run_id,
                step_id=f"{CANCEL_WAITER_PREFIX}{i}",
                event=rule.event,
                match=match,
                lookback_ns=max(1, since_start),
                registered_at=ctx.now,
                as_text=as_text,
            )
        )
    for sid in ctx.g.order:
        step = ctx.g.steps[sid]
        if step.depends_on or sid in ctx.g.handlers:
            continue  # handlers never start on their own, even without dependencies
        if ctx.run.status != "running" or ctx.run.compensating is not None:
            return
        _steps.begin(ctx, sid, ctx.run.input)
    timeout = ctx.defn.timeout
    if timeout is not None and ctx.run.status == "running":
        ctx.timer("workflow_timeout", ctx.now + ns_delta(timeout), {})


def _ns_between(earlier: datetime, later: datetime) -> int:
    """Whole nanoseconds from ``earlier`` to ``later`` (0 if not after), without floats."""
    d = aware(later) - aware(earlier)
    return max(0, (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1_000)


def _on_admitted(ctx: Ctx, event: Event) -> None:
    if _redrive.resumed_pending(ctx.run):
        _redrive.proceed(ctx)
    elif ctx.run.status == "pending":
        _start(ctx, admitted=True)


def _on_wait_matched(ctx: Ctx, event: Event) -> None:
    sid = event.step_id or ""
    if sid.startswith(CANCEL_WAITER_PREFIX):
        name = event_data(event).get("name")
        _failure.cancel_run(ctx, f"cancel_on event {name!r} matched")
        return
    _waits.on_wait_matched(ctx, event)


def _on_cancel(ctx: Ctx, event: Event) -> None:
    reason = event_data(event).get("reason")
    _failure.cancel_run(ctx, reason if isinstance(reason, str) and reason else "by request")


# --- worker events -----------------------------------------------------------------------


def _on_step_started(ctx: Ctx, event: Event) -> None:
    found = _from_event(ctx, event)
    if found is None or found[2].status != "queued":
        return
    sid, item, _ = found
    holder: StepState | ItemState = ctx.mut_item(sid, item) if item is not None else ctx.mut(sid)
    holder.status = "running"
    holder.attempt_started_at = ctx.now
    iteration = ctx.st(sid).iteration if item is None else 0
    _steps.arm_backstop(ctx, sid, holder.attempts, iteration, item)


def _on_step_completed(ctx: Ctx, event: Event) -> None:
    found = _from_event(ctx, event)
    if found is None:
        return
    sid, item, _ = found
    output = event_data(event).get("output")
    own = ctx.kind(sid).on_complete
    if item is not None:
        _steps.complete_item(ctx, sid, item, output)
    elif own is not None:
        own(ctx, sid, output)
    else:
        _steps.complete_step(ctx, sid, output)


def _on_step_failed(ctx: Ctx, event: Event) -> None:
    found = _from_event(ctx, event)
    if found is None:
        return
    sid, item, _ = found
    data = event_data(event)
    default_type = "WorkerLost" if event.type == WORKER_LOST else "Error"
    err = _step_error(sid, data, default_type)
    if item is not None:
        err = err.model_copy(update={"item": item})
    retry_after = clamp_retry_after(data.get("retry_after_ns"))
    _failure.attempt_failed(ctx, sid, item, err, retry_after)


def _on_continue(ctx: Ctx, event: Event) -> None:
    found = _from_event(ctx, event)
    if found is None:
        return
    sid, item, _ = found
    if not ctx.kind(sid).iterates:
        # Ignoring it would leave the step queued forever: a handler that asks for another
        # iteration outside an agent loop is a bug in the handler, so the attempt fails.
        msg = f"step {sid!r} returned Continue, but only an agent_loop step can iterate"
        err = StepError(message=msg, type="InvalidContinue", retryable=False, step_id=sid)
        _failure.attempt_failed(ctx, sid, item, err, None, dead_letter=True)
        return
    cfg = _steps.agent_loop_config(ctx, sid)
    st = ctx.mut(sid)
    nxt = st.iteration + 1
    if cfg.budget_force_at is not None and nxt >= cfg.budget_force_at:
        msg = (
            f"agent loop step {sid!r} returned Continue at iteration {nxt}, its "
            f"budget_force_at limit ({cfg.budget_force_at}): past it a Continue is refused "
            "and the step must finish with a result"
        )
        err = _steps.non_retryable(sid, msg, "BudgetExceeded")
        _failure.fail_for_good(ctx, sid, err, dead_letter=False)
        return
    if nxt >= cfg.max_iterations:
        msg = (
            f"agent loop step {sid!r} reached its max_iterations limit ({cfg.max_iterations}) "
            "without completing"
        )
        err = _steps.non_retryable(sid, msg, "MaxIterationsExceeded")
        _failure.fail_for_good(ctx, sid, err, dead_letter=False)
        return
    started = st.started_at or ctx.now
    if cfg.max_duration is not None and ctx.now - started >= ns_delta(cfg.max_duration):
        msg = (
            f"agent loop step {sid!r} ran for longer than its max_duration "
            f"({format_duration(cfg.max_duration)}) without completing"
        )
        err = _steps.non_retryable(sid, msg, "MaxDurationExceeded")
        _failure.fail_for_good(ctx, sid, err, dead_letter=False)
        return
    # Retries count per iteration: each iteration starts again at attempt 1.
    st.iteration = nxt
    st.input = event_data(event).get("value")
    st.attempts = 0
    st.error = None
    st.attempt_started_at = None
    if cfg.loop_delay:
        st.status = "pending"
        st.waiting = "loop_delay"
        fire_at = ctx.now + ns_delta(cfg.loop_delay)
        ctx.timer("loop_delay", fire_at, {"iteration": nxt}, sid=sid, iteration=nxt)
    else:
        _steps.dispatch_held(ctx, sid)


# --- timers ------------------------------------------------------------------------------


def _on_timer(ctx: Ctx, event: Event) -> None:
    data = event_data(event)
    kind = data.get("kind")
    if kind == "workflow_timeout":
        if _redrive.retry_number(data) == ctx.run.retries:  # else armed before a retry
            _workflow_timeout(ctx)
        return
    sid = event.step_id
    if sid is None or sid not in ctx.g.steps:
        return
    attempt = _int(data.get("attempt"))
    iteration = _int(data.get("iteration"))
    item = _int(data.get("item"))
    st = ctx.st(sid)
    if kind == "retry":
        _retry_due(ctx, sid, attempt, iteration, item)
    elif kind == "loop_delay":
        if st.status == "pending" and st.waiting == "loop_delay" and iteration == st.iteration:
            _steps.dispatch_held(ctx, sid)
    elif kind == "step_timeout" and (deadline := ctx.kind(sid).on_deadline):
        deadline(ctx, sid, attempt)
    elif kind in ("step_timeout", "sticky_fallback"):
        _attempt_timer(ctx, sid, kind, attempt, iteration, item)
    elif kind in ("sleep", "wait_timeout", "approval_timeout"):
        _waits.timer_due(ctx, sid, kind, attempt)


def _attempt_timer(
    ctx: Ctx, sid: str, kind: str, attempt: int | None, iteration: int | None, item: int | None
) -> None:
    """A timer about one attempt: the backstop of a running one, or a soft-sticky fallback
    of one still queued; for any other attempt it is stale."""
    found = _current_attempt(ctx, sid, attempt, iteration, item)
    if found is None:
        return
    if kind == "step_timeout" and found[2].status == "running":
        _timed_out(ctx, sid, found[1], found[2].attempts)
    elif kind == "sticky_fallback" and found[2].status == "queued":
        _steps.sticky_fallback(ctx, sid, found[1])


def _retry_due(
    ctx: Ctx, sid: str, attempt: int | None, iteration: int | None, item: int | None
) -> None:
    st = ctx.st(sid)
    if attempt is None:
        return
    if item is not None:
        if st.status != "running" or st.items is None or not 0 <= item < len(st.items):
            return
        it = st.items[item]
        if it.status == "pending" and it.waiting == "retry" and it.attempts + 1 == attempt:
            _steps.redispatch(ctx, sid, item)
        return
    if (
        st.status == "pending"
        and st.waiting == "retry"
        and st.attempts + 1 == attempt
        and (iteration or 0) == st.iteration
    ):
        _steps.redispatch(ctx, sid, None)


def _timed_out(ctx: Ctx, sid: str, item: int | None, attempt: int) -> None:
    timeout = ctx.g.steps[sid].timeout or 0
    what = f"step {sid!r}" if item is None else f"step {sid!r} item {item}"
    err = StepError(
        message=(
            f"{what} timed out: no result within {format_duration(timeout)} "
            f"(attempt {attempt}; the worker did not answer)"
        ),
        type="Timeout",
        retryable=True,
        step_id=sid,
        item=item,
    )
    _failure.attempt_failed(ctx, sid, item, err, None)


def _workflow_timeout(ctx: Ctx) -> None:
    if ctx.run.compensating is not None:
        return  # compensation is already undoing the run; let it finish its cleanup
    timeout = ctx.defn.timeout or 0
    msg = f"workflow timed out after {format_duration(timeout)}"
    err = StepError(message=msg, type="WorkflowTimeout", retryable=False)
    _failure.fail_or_compensate(ctx, None, err, msg)


_HANDLERS: dict[str, Callable[[Ctx, Event], None]] = {
    WORKFLOW_CANCEL_REQUESTED: _on_cancel,
    STEP_STARTED: _on_step_started,
    STEP_COMPLETED: _on_step_completed,
    STEP_FAILED: _on_step_failed,
    WORKER_LOST: _on_step_failed,
    STEP_CONTINUE: _on_continue,
    TIMER_FIRED: _on_timer,
    STEP_WAIT_MATCHED: _on_wait_matched,
    WORKFLOW_ADMITTED: _on_admitted,
    STEP_APPROVED: _waits.on_approved,
    STEP_REJECTED: _waits.on_rejected,
    CHILD_COMPLETED: _waits.on_child,
    CHILD_FAILED: _waits.on_child,
}
