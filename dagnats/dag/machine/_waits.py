"""Steps that wait rather than work: sleep, wait_for_event, approval, sub_workflow.

Each one is ``running`` with ``waiting`` saying what for; its events (and timers) are
accepted only in that state, so late or repeated ones change nothing.
"""

from __future__ import annotations

from datetime import datetime

from dagnats.dag.definition.graph import step_config
from dagnats.dag.definition.models import (
    MAX_SLEEP_NS,
    MAX_SUB_WORKFLOW_DEPTH,
    ApprovalConfig,
    SleepConfig,
    SubWorkflowConfig,
    WaitForEventConfig,
)
from dagnats.dag.machine import _failure, _steps
from dagnats.dag.machine._context import Ctx, event_data, ns_delta
from dagnats.dag.machine.actions import (
    CancelChildRun,
    RegisterWaiter,
    RemoveWaiter,
    RequestApproval,
    StartChildRun,
)
from dagnats.dag.machine.inputs import (
    InputError,
    next_cron_instant,
    resolve_any_match,
    resolve_input_instant,
    resolve_until,
)
from dagnats.dag.machine.state import StepError
from dagnats.protocol import keys
from dagnats.protocol.durations import format_duration
from dagnats.protocol.events import (
    CHILD_COMPLETED,
    STEP_CHILD_STARTED,
    STEP_SLEEP_COMPLETED,
    STEP_SLEEP_STARTED,
    STEP_WAIT_STARTED,
    STEP_WAIT_TIMEOUT,
    Event,
)


def _fail(ctx: Ctx, sid: str, message: str, type_: str) -> None:
    """A waiting step fails for good: nothing a worker ran, so no dead letter."""
    _failure.fail_for_good(ctx, sid, _steps.non_retryable(sid, message, type_), dead_letter=False)


def start_sleep(ctx: Ctx, sid: str) -> None:
    step = ctx.g.steps[sid]
    cfg = step.config
    st = ctx.mut(sid)
    st.attempts += 1  # 1, or the next after a retried run's earlier attempts (fresh ids)
    try:
        wake, source = _wake_time(ctx, sid, cfg if isinstance(cfg, SleepConfig) else None)
    except InputError as exc:
        _fail(ctx, sid, str(exc), "InvalidInput")
        return
    if wake - ctx.now > ns_delta(MAX_SLEEP_NS):
        msg = (
            f"sleep step {sid!r}: config {source!r} is {wake.isoformat()}, more than 365 days "
            "ahead (MAX_SLEEP)"
        )
        _fail(ctx, sid, msg, "InvalidInput")
        return
    ctx.record(STEP_SLEEP_STARTED, {"until": wake.isoformat()}, sid=sid, attempt=st.attempts)
    if wake <= ctx.now:
        finish_sleep(ctx, sid)
        return
    st.status = "running"
    st.waiting = "sleep"
    ctx.timer("sleep", wake, {"attempt": st.attempts}, sid=sid, attempt=st.attempts)


def _wake_time(ctx: Ctx, sid: str, cfg: SleepConfig | None) -> tuple[datetime, str]:
    """When a sleep wakes, and the config field that said so; a past instant is now."""
    st = ctx.st(sid)
    if cfg is not None and cfg.until is not None:
        return resolve_until(sid, cfg.until, st.input, ctx.run), "until"
    if cfg is not None and cfg.until_input_path is not None:
        return resolve_input_instant(sid, cfg.until_input_path, ctx.run), "until_input_path"
    if cfg is not None and cfg.cron is not None:
        return next_cron_instant(cfg.cron, ctx.now), "cron"
    duration = cfg.duration if cfg is not None and cfg.duration else 0
    return ctx.now + ns_delta(duration), "duration"


def finish_sleep(ctx: Ctx, sid: str) -> None:
    st = ctx.st(sid)
    ctx.record(STEP_SLEEP_COMPLETED, None, sid=sid, attempt=st.attempts)
    _steps.complete_step(ctx, sid, st.input)  # a sleep passes its input through


def start_wait(ctx: Ctx, sid: str) -> None:
    cfg = ctx.g.steps[sid].config
    assert isinstance(cfg, WaitForEventConfig)
    st = ctx.mut(sid)
    st.attempts += 1
    try:
        match, as_text = resolve_any_match(
            f"wait_for_event step {sid!r}", cfg.match, st.input, ctx.run
        )
    except InputError as exc:
        _fail(ctx, sid, str(exc), "InvalidInput")
        return
    st.status = "running"
    st.waiting = "event"
    ctx.emit(
        RegisterWaiter(
            run_id=ctx.run_id,
            step_id=sid,
            event=cfg.event,
            match=match,
            lookback_ns=cfg.lookback,
            registered_at=ctx.now,
            as_text=as_text,
        )
    )
    n = st.attempts
    ctx.record(STEP_WAIT_STARTED, {"event": cfg.event, "match": match}, sid=sid, attempt=n)
    if cfg.timeout is not None:
        fire_at = ctx.now + ns_delta(cfg.timeout)
        ctx.timer("wait_timeout", fire_at, {"attempt": n}, sid=sid, attempt=n)


def start_approval(ctx: Ctx, sid: str) -> None:
    cfg = step_config(ctx.g.steps[sid])
    timeout = cfg.timeout if isinstance(cfg, ApprovalConfig) else ApprovalConfig().timeout
    message = cfg.message if isinstance(cfg, ApprovalConfig) else None
    st = ctx.mut(sid)
    st.attempts += 1
    st.status = "running"
    st.waiting = "approval"
    expires = ctx.now + ns_delta(timeout)
    ctx.emit(
        RequestApproval(
            run_id=ctx.run_id,
            step_id=sid,
            expires_at=expires,
            message=message,
            subject=cfg.subject if isinstance(cfg, ApprovalConfig) else None,
            description=cfg.description if isinstance(cfg, ApprovalConfig) else None,
            metadata=dict(cfg.metadata) if isinstance(cfg, ApprovalConfig) else None,
        )
    )
    n = st.attempts
    ctx.timer("approval_timeout", expires, {"attempt": n}, sid=sid, attempt=n)


def approval_timeout_text(ctx: Ctx, sid: str) -> str:
    cfg = step_config(ctx.g.steps[sid])
    timeout = cfg.timeout if isinstance(cfg, ApprovalConfig) else ApprovalConfig().timeout
    return format_duration(timeout)


def child_run_id(run_id: str, sid: str, attempt: int) -> str:
    """``<run>-<step>-<attempt>``, kept subject-safe (see :func:`protocol.keys.child_run_id`)."""
    return keys.child_run_id(run_id, sid, attempt)


def start_child(ctx: Ctx, sid: str) -> None:
    cfg = ctx.g.steps[sid].config
    assert isinstance(cfg, SubWorkflowConfig)
    st = ctx.mut(sid)
    st.attempts += 1
    depth = ctx.run.depth + 1
    if depth > MAX_SUB_WORKFLOW_DEPTH:
        msg = (
            f"sub_workflow step {sid!r}: nesting depth {depth} exceeds the limit of "
            f"{MAX_SUB_WORKFLOW_DEPTH} (MAX_SUB_WORKFLOW_DEPTH)"
        )
        _fail(ctx, sid, msg, "DepthExceeded")
        return
    cid = child_run_id(ctx.run_id, sid, st.attempts)
    st.child_run_id = cid
    st.status = "running"
    st.waiting = "child"
    ctx.emit(
        StartChildRun(
            run_id=ctx.run_id,
            step_id=sid,
            child_run_id=cid,
            workflow=cfg.workflow,
            revision=cfg.revision,
            input=st.input,
            detach=cfg.detach,
            depth=depth,
        )
    )
    ctx.record(
        STEP_CHILD_STARTED,
        {"child_run_id": cid, "workflow": cfg.workflow, "detach": cfg.detach},
        sid=sid,
        attempt=st.attempts,
    )
    if cfg.detach:
        _steps.complete_step(ctx, sid, {"child_run_id": cid})
        return
    timeout = ctx.g.steps[sid].timeout
    if timeout is not None:
        # The child's own steps have deadlines; this bounds the child run as a whole.
        fire_at = ctx.now + ns_delta(timeout)
        ctx.timer("step_timeout", fire_at, {"attempt": st.attempts}, sid=sid, attempt=st.attempts)


# --- events and timers -------------------------------------------------------------------


def _waiting(ctx: Ctx, event: Event, waiting: str) -> str | None:
    sid = event.step_id
    if sid is None or sid not in ctx.g.steps:
        return None
    st = ctx.st(sid)
    return sid if st.status == "running" and st.waiting == waiting else None


def on_wait_matched(ctx: Ctx, event: Event) -> None:
    sid = _waiting(ctx, event, "event")
    if sid is None:
        return
    cfg = ctx.g.steps[sid].config
    assert isinstance(cfg, WaitForEventConfig)
    ctx.emit(RemoveWaiter(run_id=ctx.run_id, step_id=sid, event=cfg.event))
    _steps.complete_step(ctx, sid, event_data(event).get("event"))


def on_approved(ctx: Ctx, event: Event) -> None:
    sid = _waiting(ctx, event, "approval")
    if sid is not None:
        _steps.complete_step(ctx, sid, event_data(event).get("data"))


def on_rejected(ctx: Ctx, event: Event) -> None:
    sid = _waiting(ctx, event, "approval")
    if sid is None:
        return
    reason = event_data(event).get("reason")
    text = reason if isinstance(reason, str) and reason else "no reason given"
    _fail(ctx, sid, f"approval step {sid!r} was rejected: {text}", "Rejected")


def on_child(ctx: Ctx, event: Event) -> None:
    sid = _waiting(ctx, event, "child")
    if sid is None:
        return
    st = ctx.st(sid)
    data = event_data(event)
    cid = data.get("child_run_id")
    if cid is not None and cid != st.child_run_id:
        return  # the result of an earlier attempt's child run
    if event.type == CHILD_COMPLETED:
        _steps.complete_step(ctx, sid, data.get("output"))
        return
    status = data.get("status") if isinstance(data.get("status"), str) else "failed"
    detail = data.get("error")
    text = detail if isinstance(detail, str) and detail else "no error message"
    err = StepError(
        message=f"sub-workflow run {st.child_run_id} {status}: {text}",
        type="ChildRunFailed",
        retryable=True,  # whether it is retried is the step's own retry policy's call
        step_id=sid,
    )
    _failure.attempt_failed(ctx, sid, None, err, None, dead_letter=False)


def timer_due(ctx: Ctx, sid: str, kind: str, attempt: int | None) -> None:
    """A sleep ended, or a wait / approval ran out of time (stale timers change nothing)."""
    st = ctx.st(sid)
    waits = {"sleep": "sleep", "wait_timeout": "event", "approval_timeout": "approval"}[kind]
    if st.status != "running" or st.waiting != waits or st.attempts != attempt:
        return
    if kind == "sleep":
        finish_sleep(ctx, sid)
    elif kind == "wait_timeout":
        cfg = ctx.g.steps[sid].config
        assert isinstance(cfg, WaitForEventConfig)
        ctx.emit(RemoveWaiter(run_id=ctx.run_id, step_id=sid, event=cfg.event))
        ctx.record(STEP_WAIT_TIMEOUT, None, sid=sid, attempt=st.attempts)
        _steps.complete_step(ctx, sid, {"timeout": True})
    else:
        after = approval_timeout_text(ctx, sid)
        msg = f"approval step {sid!r} expired after {after} without a decision"
        _fail(ctx, sid, msg, "ApprovalExpired")


def child_deadline(ctx: Ctx, sid: str, attempt: int | None) -> None:
    """A sub_workflow step's ``timeout``: cancel the child and fail the attempt."""
    st = ctx.st(sid)
    if st.status != "running" or st.waiting != "child" or st.attempts != attempt:
        return
    timeout = ctx.g.steps[sid].timeout or 0
    if st.child_run_id is not None:
        reason = f"step {sid!r} of run {ctx.run_id} timed out"
        ctx.emit(CancelChildRun(child_run_id=st.child_run_id, reason=reason))
    err = StepError(
        message=(
            f"sub-workflow run {st.child_run_id} of step {sid!r} did not finish within "
            f"{format_duration(timeout)}"
        ),
        type="Timeout",
        retryable=True,
        step_id=sid,
    )
    _failure.attempt_failed(ctx, sid, None, err, None, dead_letter=False)
