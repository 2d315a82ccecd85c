"""The end of a run: failing, cancelling or completing it, and what a cancelled step leaves
behind (its map items, its child run, its waiter). Part of ``advance()``; re-exported by
:mod:`dagnats.dag.machine._failure`, which its callers use.
"""

from __future__ import annotations

from typing import Any

from dagnats.dag.definition.models import SubWorkflowConfig, WaitForEventConfig
from dagnats.dag.machine import _steps
from dagnats.dag.machine._context import Ctx
from dagnats.dag.machine.actions import CancelChildRun, FinishRun, RemoveWaiter
from dagnats.dag.machine.inputs import dependency_value
from dagnats.dag.machine.state import STEP_TERMINAL, RunFailure, RunStatus, StepState
from dagnats.protocol.events import (
    CANCEL_WAITER_PREFIX,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
)


def cancel_items(ctx: Ctx, sid: str) -> None:
    items = ctx.st(sid).items or []
    for i, it in enumerate(items):
        if it.status not in STEP_TERMINAL:
            c = ctx.mut_item(sid, i)
            c.status = "cancelled"
            c.waiting = None


def busy(st: StepState) -> bool:
    return st.status in ("queued", "running") or (st.status == "pending" and st.waiting is not None)


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
            if busy(st):
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
            cancel_items(ctx, sid)
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
