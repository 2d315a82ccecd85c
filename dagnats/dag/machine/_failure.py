"""Failure paths: retries, on_failure recovery and compensation; the end of a run is in
:mod:`dagnats.dag.machine._ending` (re-exported here, where its callers find it)."""

from __future__ import annotations

from typing import Any

from dagnats.dag.machine import _steps
from dagnats.dag.machine._context import Ctx, ns_delta
from dagnats.dag.machine._ending import (
    _cancel_open,
    _finish,
    busy,
    cancel_child,
    cancel_items,
    cancel_run,
    complete_run_if_done,
    drop_waiter,
    fail_run,
    may_leave_timers,
)
from dagnats.dag.machine.actions import DeadLetter
from dagnats.dag.machine.inputs import dependency_value
from dagnats.dag.machine.retry import DEFAULT_POLICY, effective_policy, retries_left, retry_delay_ns
from dagnats.dag.machine.state import RunFailure, StepError
from dagnats.protocol.events import (
    COMPENSATE_STARTED,
    COMPENSATE_STEP,
    STEP_RECOVERED,
    STEP_RETRYING,
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
        cancel_items(ctx, sid)
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
    if not busy(ctx.st(handler)):
        _start_handler(ctx, handler, sid, handler_input(sid, err))
    # else: the handler is serving another step; it serves this one when it is done.


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


__all__ = [
    "attempt_failed",
    "busy",
    "cancel_child",
    "cancel_items",
    "cancel_run",
    "complete_run_if_done",
    "drop_waiter",
    "fail_for_good",
    "fail_or_compensate",
    "fail_run",
    "handler_done",
    "handler_input",
    "may_leave_timers",
    "start_compensation",
]
