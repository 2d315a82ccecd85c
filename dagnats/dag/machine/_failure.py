"""Failure paths: retries, on_failure recovery, compensation, and finishing the run."""

from __future__ import annotations

from typing import Any

from dagnats.dag.definition.models import SubWorkflowConfig, WaitForEventConfig
from dagnats.dag.machine import _steps
from dagnats.dag.machine._context import Ctx, ns_delta
from dagnats.dag.machine.actions import CancelChildRun, DeadLetter, FinishRun, RemoveWaiter
from dagnats.dag.machine.inputs import dependency_value
from dagnats.dag.machine.retry import DEFAULT_POLICY, effective_policy, retries_left, retry_delay_ns
from dagnats.dag.machine.state import STEP_TERMINAL, RunFailure, RunStatus, StepError, StepState
from dagnats.protocol.events import (
    CANCEL_WAITER_PREFIX,
    COMPENSATE_STARTED,
    COMPENSATE_STEP,
    STEP_RECOVERED,
    STEP_RETRYING,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
)


def _error_view(err: StepError) -> dict[str, Any]:
    """The error as events record it."""
    return {"message": err.message, "type": err.type}


def handler_input(sid: str, err: StepError) -> dict[str, Any]:
    """An ``on_failure`` handler's input, Go's form: ``{failed_step, error: "<message>"}``
    (plus dagnats' ``error_type``)."""
    return {"failed_step": sid, "error": err.message, "error_type": err.type}


def _error_dict(err: StepError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": err.message, "type": err.type, "retryable": err.retryable}
    if err.step_id is not None:
        out["step_id"] = err.step_id
    if err.item is not None:
        out["item"] = err.item
    return out


# --- one attempt failed ------------------------------------------------------------------


def attempt_failed(
    ctx: Ctx,
    sid: str,
    item: int | None,
    err: StepError,
    retry_after_ns: int | None,
    *,
    dead_letter: bool = True,
) -> None:
    """An attempt failed: schedule a retry if the policy allows, else fail the step for good."""
    step = ctx.g.steps[sid]
    if ctx.kind(sid).retries_only_when_asked:
        # Re-running a whole child run is only done when the step asks for it explicitly;
        # the child's own steps already retried under their policies.
        policy = step.retry or DEFAULT_POLICY
    else:
        policy = effective_policy(ctx.defn, step)
    holder: Any = ctx.mut_item(sid, item) if item is not None else ctx.mut(sid)
    attempts: int = holder.attempts
    # Attempts since the run's last retry: the policy's budget starts again there.
    counted = attempts - holder.retry_base
    if not (err.retryable and retries_left(policy, counted)):
        fail_for_good(ctx, sid, err, item=item, dead_letter=dead_letter)
        return
    delay = retry_after_ns if retry_after_ns is not None else retry_delay_ns(policy, counted)
    st = ctx.st(sid)
    holder.status = "pending"
    holder.waiting = "retry"
    holder.error = err
    holder.attempt_started_at = None
    nxt = attempts + 1
    iteration = st.iteration if item is None else 0
    ctx.record(
        STEP_RETRYING,
        {"delay_ns": delay, "next_attempt": nxt, "error": err.message},
        sid=sid,
        attempt=attempts,
        iteration=iteration,
        item=item,
    )
    if delay <= 0:
        _steps.redispatch(ctx, sid, item)
        return
    ctx.attempt_timer("retry", ctx.now + ns_delta(delay), sid, nxt, iteration, item)


# --- a step failed for good --------------------------------------------------------------


def fail_for_good(
    ctx: Ctx, sid: str, err: StepError, *, item: int | None = None, dead_letter: bool = True
) -> None:
    """No retry left (or none possible): on_failure, else compensation, else the run fails."""
    step = ctx.g.steps[sid]
    err = err.model_copy(update={"step_id": sid, "item": item})
    st = ctx.mut(sid)
    if dead_letter and ctx.is_task(sid):
        # Only work a worker attempted goes to DEAD_LETTERS: that is what a replay can redo.
        it = None
        task_input = st.input
        if item is not None and st.items is not None and isinstance(st.input, list):
            it = st.items[item]
            task_input = st.input[item]
        ctx.emit(
            DeadLetter(
                run_id=ctx.run_id,
                step_id=sid,
                item=item,
                task=step.task_name,
                input=task_input,
                error=_error_dict(err),
                attempts=it.attempts if it is not None else st.attempts,
            )
        )
    if item is not None:
        failed_item = ctx.mut_item(sid, item)
        failed_item.status = "failed"
        failed_item.error = err
        failed_item.waiting = None
        _cancel_items(ctx, sid)
    was_holding = st.status in ("queued", "running") or st.waiting in ("retry", "loop_delay")
    st.status = "failed"
    st.error = err
    st.waiting = None
    st.finished_at = ctx.now
    st.attempt_started_at = None
    if was_holding or st.items is not None:
        ctx.release_slot()
    if st.handling is not None and sid in ctx.g.handlers:
        owner = st.handling
        if ctx.run.compensating is not None:
            msg = f"compensation of step {owner!r} failed: step {sid!r} failed: {err.message}"
            fail_run(ctx, msg, sid, err.type)
            return
        # The owner was not recovered after all; from here on the failure is the owner's,
        # as if it had no on_failure (compensation if configured, else the run fails).
        o = ctx.mut(owner)
        o.status = "failed"
        o.waiting = None
        o.finished_at = ctx.now
        msg = f"step {owner!r} failed and its on_failure handler {sid!r} failed too: {err.message}"
        fail_or_compensate(ctx, owner, err, msg)
        return
    if step.on_failure is not None and ctx.run.compensating is None:
        _recover(ctx, sid, step.on_failure, err)
        return
    fail_or_compensate(ctx, sid, err, f"step {sid!r} failed: {err.message}")


def _cancel_items(ctx: Ctx, sid: str) -> None:
    items = ctx.st(sid).items or []
    for i, it in enumerate(items):
        if it.status not in STEP_TERMINAL:
            c = ctx.mut_item(sid, i)
            c.status = "cancelled"
            c.waiting = None


def fail_or_compensate(ctx: Ctx, failed: str | None, err: StepError, message: str) -> None:
    """A failure nothing recovers: undo completed work if any step has a compensator."""
    if ctx.run.compensating is None and _compensable(ctx):
        start_compensation(ctx, failed, err, message)
    else:
        fail_run(ctx, message, failed, err.type)


# --- on_failure ----------------------------------------------------------------------------


def _recover(ctx: Ctx, sid: str, handler: str, err: StepError) -> None:
    st = ctx.mut(sid)
    st.status = "recovered"
    st.waiting = "handler"
    ctx.record(
        STEP_RECOVERED,
        {"handler": handler, "error": _error_view(err)},
        sid=sid,
        attempt=st.attempts,
        iteration=st.iteration,
    )
    if not _busy(ctx.st(handler)):
        _start_handler(ctx, handler, sid, handler_input(sid, err))
    # else: the handler is serving another step; it serves this one when it is done.


def _busy(st: StepState) -> bool:
    return st.status in ("queued", "running") or (st.status == "pending" and st.waiting is not None)


def _start_handler(ctx: Ctx, hid: str, owner: str, step_input: Any) -> None:
    """Run handler step ``hid`` for ``owner``; a handler used before runs afresh."""
    h = ctx.mut(hid)
    used = h.handling is not None
    h.status = "pending"
    h.waiting = None
    h.attempts = 0
    # For a handler, ``iteration`` counts its uses: it keeps dedup ids distinct and lets a
    # late result from an earlier use be recognised as stale.
    h.iteration = h.iteration + 1 if used else 0
    h.output = None
    h.error = None
    h.started_at = None
    h.finished_at = None
    h.attempt_started_at = None
    h.handling = owner
    _steps.begin(ctx, hid, step_input)


def handler_done(ctx: Ctx, hid: str) -> None:
    """A handler completed (or was skipped): its owner is recovered, or compensated."""
    h = ctx.st(hid)
    owner = h.handling
    assert owner is not None
    comp = ctx.run.compensating
    if comp is not None:
        if comp and comp[0] == owner and ctx.g.steps[owner].compensate == hid:
            ctx.run.compensating = comp[1:]
            _next_compensation(ctx)
        return
    o = ctx.st(owner)
    if o.status == "recovered" and o.waiting == "handler":
        om = ctx.mut(owner)
        om.output = dependency_value(h)
        om.waiting = None
        om.finished_at = ctx.now
        ctx.finished_step(owner)  # its dependents proceed with the handler's output
    for sid in ctx.g.order:  # serve the next step queued on this shared handler
        st = ctx.st(sid)
        if (
            sid != owner
            and ctx.g.steps[sid].on_failure == hid
            and st.status == "recovered"
            and st.waiting == "handler"
            and st.error is not None
        ):
            _start_handler(ctx, hid, sid, handler_input(sid, st.error))
            return


# --- compensation --------------------------------------------------------------------------


def _compensable(ctx: Ctx) -> list[str]:
    """Completed steps with a compensator, most recently completed first."""
    out: list[str] = []
    seen: set[str] = set()
    for sid in reversed(ctx.run.completion_order):
        if sid in seen:
            continue
        seen.add(sid)
        if ctx.g.steps[sid].compensate is not None and ctx.st(sid).status == "completed":
            out.append(sid)
    return out


def start_compensation(ctx: Ctx, failed: str | None, err: StepError, message: str) -> None:
    """Undo completed work one compensator at a time, in reverse completion order."""
    todo = _compensable(ctx)
    run = ctx.run
    run.error = RunFailure(message=message, step_id=failed, type=err.type)
    run.failed_step = failed
    _cancel_open(ctx, "the run is compensating", keep_idle_handlers=True)
    run.compensating = todo
    ctx.record(
        COMPENSATE_STARTED, {"steps": todo, "failed_step": failed, "error": _error_view(err)}
    )
    _next_compensation(ctx)


def _next_compensation(ctx: Ctx) -> None:
    run = ctx.run
    assert run.compensating is not None and run.error is not None
    if not run.compensating:
        _finish(ctx, "compensated", None, run.error)
        return
    sid = run.compensating[0]
    hid = ctx.g.steps[sid].compensate
    assert hid is not None
    failed = run.failed_step
    failed_err = ctx.st(failed).error if failed is not None else None
    error = failed_err if failed_err is not None else run.error
    # Go's compensate input (dagnats adds trigger_error_type).
    step_input = {
        "original_step": sid,
        "original_output": ctx.st(sid).output,
        "trigger_step": failed,
        "trigger_error": error.message,
        "trigger_error_type": error.type,
    }
    # Keyed by the compensated step: each step is compensated at most once per run.
    ctx.record(COMPENSATE_STEP, {"step": sid, "handler": hid}, sid=sid)
    _start_handler(ctx, hid, sid, step_input)


# --- the end of a run ----------------------------------------------------------------------


def fail_run(ctx: Ctx, message: str, step_id: str | None, type_: str) -> None:
    run = ctx.run
    if run.compensating is not None and run.error is not None:
        # Keep what went wrong first visible next to the compensation failure.
        message = f"{message} (while compensating after: {run.error.message})"
    error = RunFailure(message=message, step_id=step_id, type=type_)
    if run.failed_step is None:
        run.failed_step = step_id
    _finish(ctx, "failed", None, error)


def cancel_run(ctx: Ctx, reason: str) -> None:
    _finish(ctx, "cancelled", None, RunFailure(message=f"cancelled: {reason}", type="Cancelled"))


def complete_run_if_done(ctx: Ctx) -> None:
    g = ctx.g
    for sid in g.order:
        st = ctx.st(sid)
        if sid in g.handlers:
            if _busy(st):
                return
        elif not _steps.satisfied(st):
            return
    if len(g.sinks) == 1:
        output = dependency_value(ctx.st(g.sinks[0]))
    else:
        output = {sid: dependency_value(ctx.st(sid)) for sid in g.sinks}
    _finish(ctx, "completed", output, None)


def _finish(ctx: Ctx, status: RunStatus, output: Any, error: RunFailure | None) -> None:
    run = ctx.run
    if run.status == "running":  # cancel_on waiters exist only once the run was admitted
        for i, rule in enumerate(ctx.defn.cancel_on):
            ctx.emit(
                RemoveWaiter(
                    run_id=run.run_id, step_id=f"{CANCEL_WAITER_PREFIX}{i}", event=rule.event
                )
            )
    # An attempt still in flight may store a checkpoint yet.
    checkpoints = run.checkpoints or any(
        st.status in ("queued", "running") for st in run.steps.values()
    )
    children = _cancel_open(ctx, f"run {run.run_id} {status}", keep_idle_handlers=False)
    run.status = status
    run.output = output
    run.error = error
    run.finished_at = ctx.now
    err = error.model_dump(exclude_none=True) if error is not None else None
    if status == "completed":
        ctx.record(WORKFLOW_COMPLETED, {"output": output})
    elif status == "compensated":
        ctx.record(WORKFLOW_COMPENSATED, {"error": err, "failed_step": run.failed_step})
    elif status == "cancelled":
        ctx.record(WORKFLOW_CANCELLED, {"error": err})
    else:
        ctx.record(WORKFLOW_FAILED, {"error": err, "failed_step": run.failed_step})
    parent = run.parent
    ctx.emit(
        FinishRun(
            run_id=run.run_id,
            status=status,
            output=output,
            error=err,
            parent_run_id=parent.run_id if parent is not None else None,
            parent_step_id=parent.step_id if parent is not None else None,
            child_steps=children,
            timers=may_leave_timers(ctx),
            checkpoints=checkpoints,
            retries=run.retries,
        )
    )


def _cancel_open(ctx: Ctx, reason: str, *, keep_idle_handlers: bool) -> tuple[str, ...]:
    """Cancel every unfinished step; returns the child runs told to cancel.

    Never-triggered handler steps are kept (compensation may need them) or, when the run
    ends, marked ``skipped``: they were not needed, which is not the same as cancelled.
    """
    children: list[str] = []
    for sid in ctx.g.order:
        st = ctx.st(sid)
        if st.status == "recovered" and st.waiting == "handler":
            # Its handler did not finish: the failure was not dealt with, and a retry of
            # the run must run the step again rather than take it for recovered.
            m = ctx.mut(sid)
            m.status = "cancelled"
            m.waiting = None
            continue
        if st.status in STEP_TERMINAL:
            continue
        idle_handler = sid in ctx.g.handlers and _steps.unbegun(st)
        if idle_handler and keep_idle_handlers:
            continue
        on_cancel = ctx.kind(sid).on_cancel
        if on_cancel is not None:
            child = on_cancel(ctx, sid, reason)
            if child is not None:
                children.append(child)
        m = ctx.mut(sid)
        m.status = "skipped" if idle_handler else "cancelled"
        m.waiting = None
        m.finished_at = ctx.now
        m.attempt_started_at = None
        if st.items is not None:
            _cancel_items(ctx, sid)
    ctx.release_slot()
    return tuple(children)


def cancel_child(ctx: Ctx, sid: str, reason: str) -> str | None:
    """A cancelled sub_workflow step cancels its attached child run (returned)."""
    st, cfg = ctx.st(sid), ctx.g.steps[sid].config
    if st.waiting == "child" and st.child_run_id and isinstance(cfg, SubWorkflowConfig):
        if not cfg.detach:
            ctx.emit(CancelChildRun(child_run_id=st.child_run_id, reason=reason))
            return st.child_run_id
    return None


def drop_waiter(ctx: Ctx, sid: str, reason: str) -> str | None:
    """A cancelled wait_for_event step removes its correlation entry."""
    st, cfg = ctx.st(sid), ctx.g.steps[sid].config
    if st.waiting == "event" and isinstance(cfg, WaitForEventConfig):
        ctx.emit(RemoveWaiter(run_id=ctx.run_id, step_id=sid, event=cfg.event))
    return None


def may_leave_timers(ctx: Ctx) -> bool:
    """Whether a run of ``ctx.defn`` may schedule timers (retries, timeouts, delays, waits,
    deferred dispatches), i.e. whether its end needs a purge of the timer stream."""
    defn = ctx.defn
    if defn.timeout is not None or defn.sticky == "soft":  # soft sticky: fallback timers
        return True
    if defn.default_retry is not None and defn.default_retry.max_attempts > 0:
        return True
    return any(
        s.timeout is not None
        or ctx.g.kinds[s.id].sets_timers
        or (s.retry is not None and s.retry.max_attempts > 0)
        or bool(s.retries)
        or s.rate_limit is not None
        or s.keyed_rate_limit is not None
        or s.max_task_concurrency is not None
        for s in defn.steps
    )
