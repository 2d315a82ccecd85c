"""Sending a step's task: its input narrowed, rate limits and sticky placement, the agent
loop's budget and the engine's backstop timer on a silent worker. Part of ``advance()``;
re-exported by :mod:`dagnats.dag.machine._steps`, which its callers use.
"""

from __future__ import annotations

from typing import Any

from dagnats.dag.definition.flow import key_digest, value_at
from dagnats.dag.definition.models import (
    AgentLoopConfig,
    StepDef,
)
from dagnats.dag.machine._context import Ctx, ns_delta
from dagnats.dag.machine.actions import DispatchTask
from dagnats.protocol import dedup, keys
from dagnats.protocol.durations import SECOND

BACKSTOP_GRACE_NS = 5 * SECOND
# Soft sticky: how long an attempt waits for the run's worker before any worker may take it.
STICKY_SOFT_WAIT_NS = 2 * SECOND


def backstop_ns(timeout_ns: int) -> int:
    """How long after an attempt starts the engine gives up on a silent worker.

    The worker enforces the real deadline; this catches a worker that died without a word.
    Half the timeout again plus a grace period leaves room for the worker's own cancel and
    its result to travel, so the backstop never races a worker that is merely on time.
    """
    return timeout_ns + timeout_ns // 2 + BACKSTOP_GRACE_NS


def narrow(value: Any, path: str) -> Any:
    """``body_from``: follow a dot path of object keys and list indexes; missing -> None."""
    for part in path.split(".")[:64]:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def dispatch(ctx: Ctx, sid: str) -> None:
    """Send the next attempt of a normal / agent_loop step, or wait for a slot."""
    if not ctx.slot_free():
        st = ctx.mut(sid)
        st.status = "pending"
        st.waiting = "slot"
        return
    ctx.take_slot()
    st = ctx.mut(sid)
    st.attempts += 1
    st.status = "queued"
    st.waiting = None
    st.attempt_started_at = None
    if st.started_at is None:
        st.started_at = ctx.now
    _send(ctx, sid, st.input, st.attempts, st.iteration, None, st.handling)


def sticky_fallback(ctx: Ctx, sid: str, item: int | None) -> None:
    """Soft sticky: send the queued attempt again, to every worker (the run's did not start
    it within STICKY_SOFT_WAIT_NS). Whichever copy starts first wins; a late one is stale."""
    st = ctx.st(sid)
    if item is not None:
        assert st.items is not None and isinstance(st.input, list)
        it = ctx.mut_item(sid, item)
        if it.fell_back == f"0.{it.attempts}":
            return  # sent already (a repeated timer)
        it.fell_back = f"0.{it.attempts}"
        _send(ctx, sid, st.input[item], it.attempts, 0, item, None, fallback=True)
        return
    mine = f"{st.iteration}.{st.attempts}"
    if st.fell_back == mine:
        return
    st = ctx.mut(sid)
    st.fell_back = mine
    _send(ctx, sid, st.input, st.attempts, st.iteration, None, st.handling, fallback=True)


def _send(
    ctx: Ctx,
    sid: str,
    task_input: Any,
    attempt: int,
    iteration: int,
    item: int | None,
    handling: str | None,
    *,
    fallback: bool = False,
) -> None:
    step = ctx.g.steps[sid]
    sticky = ctx.defn.sticky
    key = dedup.task_id(ctx.run_id, sid, attempt, iteration, item)
    # A shared handler runs once per step it serves; each use gets its own key.
    idem = keys.idempotency_key(ctx.run_id, sid, item, handling)
    rate = step.rate_limit
    warn, final = _budget(ctx, sid, iteration)
    ctx.emit(
        DispatchTask(
            run_id=ctx.run_id,
            workflow=ctx.run.workflow,
            step_id=sid,
            task=step.task_name,
            input=task_input,
            attempt=attempt,
            iteration=iteration,
            item=item,
            timeout_ns=step.timeout,
            worker_group=step.worker_group,
            dedup_id=key,
            idempotency_key=idem,
            rate_limit=(rate.limit, rate.period) if rate is not None else None,
            max_task_concurrency=step.max_task_concurrency,
            keyed_rate=_keyed_rate(step, task_input),
            metadata=dict(step.metadata) if step.metadata else None,
            capabilities=tuple(step.required_capabilities),
            budget_warning=warn,
            budget_final=final,
            sticky=sticky,
            fallback=fallback,
            control_root=(ctx.run.control_root or ctx.run_id)
            if step.required_capabilities
            else None,
            run_retry=ctx.run.retries,
            agent=step.type == "agent",
        )
    )
    if sticky == "soft" and not fallback:
        fire_at = ctx.now + ns_delta(STICKY_SOFT_WAIT_NS)
        ctx.attempt_timer("sticky_fallback", fire_at, sid, attempt, iteration, item)


def _keyed_rate(step: StepDef, task_input: Any) -> tuple[str, int, int, int] | None:
    """The bucket of the step's ``keyed_rate_limit`` for this input's key value."""
    krl = step.keyed_rate_limit
    if krl is None:
        return None
    token = key_digest(value_at(krl.key, task_input))
    return (token, krl.limit, krl.period, krl.units)


def _budget(ctx: Ctx, sid: str, iteration: int) -> tuple[bool, bool]:
    """(warn, final) for an agent-loop iteration (0-based) against its budgets (1-based)."""
    cfg = ctx.g.steps[sid].config
    if not isinstance(cfg, AgentLoopConfig):
        return False, False
    n = iteration + 1
    warn = cfg.budget_warn_at is not None and n >= cfg.budget_warn_at
    final = cfg.budget_force_at is not None and n >= cfg.budget_force_at
    return warn or final, final


def arm_backstop(ctx: Ctx, sid: str, attempt: int, iteration: int, item: int | None) -> None:
    """The engine's deadline for an attempt a worker just started (steps with a timeout).

    Armed when the worker reports ``step.started``, not at dispatch: time spent waiting in
    the queue is not handler time, and counting it would fail healthy tasks in a backlog
    (and retry them into the same backlog).
    """
    timeout = ctx.g.steps[sid].timeout
    if timeout is None:
        return
    fire_at = ctx.now + ns_delta(backstop_ns(timeout))
    ctx.attempt_timer("step_timeout", fire_at, sid, attempt, iteration, item)
