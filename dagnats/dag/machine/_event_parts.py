"""What advance()'s handlers read off an event: its step, its attempt (current or
stale) and its error. Part of :mod:`dagnats.dag.machine.advance`.
"""

from __future__ import annotations

from typing import Any

from dagnats.dag.machine._context import Ctx, event_data
from dagnats.dag.machine.state import ItemState, StepError, StepState
from dagnats.protocol.events import (
    STEP_COMPLETED,
    STEP_CONTINUE,
    STEP_FAILED,
    TIMER_FIRED,
    WORKER_LOST,
    Event,
)

# --- helpers -----------------------------------------------------------------------------


RESULTS = frozenset({STEP_COMPLETED, STEP_FAILED, STEP_CONTINUE})


def may_have_checkpointed(event: Event) -> bool:
    """Whether the attempt ``event`` ends may have stored a checkpoint: its result says
    ``checkpointed``, or it ended without a result (lost, timed out)."""
    if event.type in RESULTS:
        return isinstance(event.data, dict) and event.data.get("checkpointed") is True
    if event.type == WORKER_LOST:
        return True
    return event.type == TIMER_FIRED and event_data(event).get("kind") == "step_timeout"


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def step_of(ctx: Ctx, event: Event) -> tuple[str, StepState] | None:
    sid = event.step_id
    if sid is None or sid not in ctx.g.steps:
        return None
    return sid, ctx.st(sid)


def current_attempt(
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


def from_event(ctx: Ctx, event: Event) -> tuple[str, int | None, StepState | ItemState] | None:
    return current_attempt(ctx, event.step_id, event.attempt, event.iteration, event.item)


def step_error(sid: str, data: dict[str, Any], default_type: str) -> StepError:
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
