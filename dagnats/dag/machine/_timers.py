"""``advance()`` on a fired timer: an attempt's timeout or its retry falling due, and the
workflow's own timeout. Part of :mod:`dagnats.dag.machine.advance`.
"""

from __future__ import annotations

from dagnats.dag.machine import _failure, _redrive, _steps, _waits
from dagnats.dag.machine._context import Ctx, event_data
from dagnats.dag.machine._event_parts import (
    current_attempt,
    int_or_none,
)
from dagnats.dag.machine.state import StepError
from dagnats.protocol.durations import format_duration
from dagnats.protocol.events import (
    Event,
)


def on_timer(ctx: Ctx, event: Event) -> None:
    data = event_data(event)
    kind = data.get("kind")
    if kind == "workflow_timeout":
        if _redrive.retry_number(data) == ctx.run.retries:  # else armed before a retry
            _workflow_timeout(ctx)
        return
    sid = event.step_id
    if sid is None or sid not in ctx.g.steps:
        return
    attempt = int_or_none(data.get("attempt"))
    iteration = int_or_none(data.get("iteration"))
    item = int_or_none(data.get("item"))
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
    found = current_attempt(ctx, sid, attempt, iteration, item)
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
