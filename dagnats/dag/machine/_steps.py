"""Starting and finishing steps of every type, readiness, and slot filling."""

from __future__ import annotations

from typing import Any

from dagnats.dag.definition.conditions import ConditionError, evaluate_condition
from dagnats.dag.definition.flow import key_digest, value_at
from dagnats.dag.definition.graph import step_config
from dagnats.dag.definition.models import (
    AgentLoopConfig,
    MapConfig,
    RespondConfig,
    SkipIf,
    StepDef,
)
from dagnats.dag.machine import _failure
from dagnats.dag.machine._context import Ctx, first_undispatched, ns_delta
from dagnats.dag.machine.actions import DispatchTask, Respond
from dagnats.dag.machine.inputs import (
    condition_scope,
    json_type,
    resolve_step_input,
    skip_object_holds,
)
from dagnats.dag.machine.state import ItemState, StepError, StepState
from dagnats.protocol import dedup, keys
from dagnats.protocol.durations import SECOND
from dagnats.protocol.events import STEP_MAP_COMPLETED, STEP_MAP_STARTED, STEP_SKIPPED

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


def satisfied(st: StepState) -> bool:
    """A dependency lets its dependents start: done, skipped, or recovered by its handler."""
    if st.status in ("completed", "skipped"):
        return True
    return st.status == "recovered" and st.waiting != "handler"


def unbegun(st: StepState) -> bool:
    """Never started (a begun step that is pending always says what it waits for)."""
    return st.status == "pending" and st.waiting is None


def non_retryable(sid: str, message: str, type_: str) -> StepError:
    return StepError(message=message, type=type_, retryable=False, step_id=sid)


# --- readiness ---------------------------------------------------------------------------


def settle(ctx: Ctx) -> None:
    """Start what became ready, give freed slots away, and finish the run if it is done."""
    while ctx.finished and ctx.run.status == "running":
        sid = ctx.finished.popleft()
        st = ctx.st(sid)
        if st.handling is not None and sid in ctx.g.handlers:
            _failure.handler_done(ctx, sid)
            continue
        if ctx.run.compensating is not None:
            continue  # the run is being undone: nothing new starts
        for dep in ctx.g.dependents[sid]:
            if ctx.run.status != "running" or ctx.run.compensating is not None:
                break  # starting an earlier dependent failed the run
            dst = ctx.st(dep)
            if unbegun(dst) and dep not in ctx.g.handlers and _deps_done(ctx, dep):
                begin(ctx, dep, resolve_step_input(ctx.g.steps[dep], ctx.run))
    if ctx.run.status != "running":
        return
    if ctx.freed and ctx.max_steps is not None:
        fill_slots(ctx)
    if ctx.finished_any and ctx.run.compensating is None:
        _failure.complete_run_if_done(ctx)


def _deps_done(ctx: Ctx, sid: str) -> bool:
    return all(satisfied(ctx.st(d)) for d in ctx.g.steps[sid].depends_on)


def fill_slots(ctx: Ctx) -> None:
    """Dispatch slot-waiting work in topological order while ``max_steps`` allows."""
    for sid in ctx.g.order:
        if not ctx.slot_free():
            return
        st = ctx.st(sid)
        if st.status == "pending" and st.waiting == "slot":
            dispatch(ctx, sid)
        elif st.status == "running" and st.items is not None:
            fill_map(ctx, sid)


# --- beginning a step --------------------------------------------------------------------


def begin(ctx: Ctx, sid: str, step_input: Any) -> None:
    """The step's dependencies are satisfied (or its owner needs it): start it."""
    step = ctx.g.steps[sid]
    st = ctx.mut(sid)
    st.input = step_input
    if step.skip_if is not None:
        try:
            if isinstance(step.skip_if, SkipIf):
                skip = skip_object_holds(step.skip_if, ctx.run)
                shown: Any = step.skip_if.model_dump(mode="json")
            else:
                skip = evaluate_condition(step.skip_if, condition_scope(step_input, ctx.run))
                shown = step.skip_if
        except (ConditionError, TypeError, ValueError, RecursionError) as exc:
            err = non_retryable(
                sid, f"skip_if of step {sid!r} could not be evaluated: {exc}", "ConditionError"
            )
            _failure.fail_for_good(ctx, sid, err, dead_letter=False)
            return
        if skip:
            st.status = "skipped"
            st.finished_at = ctx.now
            ctx.record(STEP_SKIPPED, {"skip_if": shown}, sid=sid, iteration=st.iteration)
            ctx.finished_step(sid)
            return
    st.started_at = ctx.now
    ctx.kind(sid).start(ctx, sid)


def start_respond(ctx: Ctx, sid: str) -> None:
    """A respond step answers the run's caller with its input, and is done."""
    st = ctx.mut(sid)
    cfg = step_config(ctx.g.steps[sid])
    if not isinstance(cfg, RespondConfig):
        cfg = RespondConfig()
    st.attempts = 1
    body = narrow(st.input, cfg.body_from) if cfg.body_from else st.input
    ctx.emit(
        Respond(
            run_id=ctx.run_id,
            step_id=sid,
            status=cfg.status,
            data=body,
            headers=dict(cfg.headers),
            content_type=cfg.content_type,
        )
    )
    complete_step(ctx, sid, st.input)


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


def dispatch_held(ctx: Ctx, sid: str) -> None:
    """Dispatch the next attempt or iteration of a step that already holds a slot."""
    st = ctx.mut(sid)
    st.status = "pending"
    st.waiting = None
    ctx.release_slot()  # its own slot is given straight back to it by ``dispatch``
    dispatch(ctx, sid)


def redispatch(ctx: Ctx, sid: str, item: int | None) -> None:
    """Send the attempt a retry was waiting for."""
    if item is not None:
        dispatch_item(ctx, sid, item)
    else:
        ctx.kind(sid).redispatch(ctx, sid)


# --- map ---------------------------------------------------------------------------------


def start_map(ctx: Ctx, sid: str) -> None:
    step = ctx.g.steps[sid]
    st = ctx.st(sid)
    items = st.input
    cfg = step_config(step)
    max_items = cfg.max_items if isinstance(cfg, MapConfig) else MapConfig().max_items
    if not isinstance(items, list):
        msg = f"map step {sid!r} expects an array input, got {json_type(items)}"
        _failure.fail_for_good(ctx, sid, non_retryable(sid, msg, "InvalidInput"), dead_letter=False)
        return
    if len(items) > max_items:
        msg = f"map step {sid!r} got {len(items)} items, more than its max_items ({max_items})"
        _failure.fail_for_good(ctx, sid, non_retryable(sid, msg, "TooManyItems"), dead_letter=False)
        return
    st = ctx.mut(sid)
    st.status = "running"
    st.attempts = 1
    st.items_done = 0
    ctx.set_items(sid, [ItemState() for _ in items])
    ctx.record(STEP_MAP_STARTED, {"items": len(items)}, sid=sid, attempt=1)
    if not items:
        ctx.record(STEP_MAP_COMPLETED, {"items": 0}, sid=sid, attempt=1)
        complete_step(ctx, sid, [])
        return
    fill_map(ctx, sid)


def fill_map(ctx: Ctx, sid: str) -> None:
    """Dispatch never-sent instances in index order, within the step's and the run's limits."""
    st = ctx.st(sid)
    items = st.items
    if items is None or st.status != "running":
        return
    cfg = step_config(ctx.g.steps[sid])
    limit = cfg.concurrency if isinstance(cfg, MapConfig) else None
    nxt = first_undispatched(items)
    inflight = nxt - st.items_done
    while nxt < len(items):
        if limit is not None and inflight >= limit:
            return
        if not ctx.slot_free():
            return
        dispatch_item(ctx, sid, nxt)
        nxt += 1
        inflight += 1


def dispatch_item(ctx: Ctx, sid: str, index: int) -> None:
    st = ctx.st(sid)
    assert st.items is not None and isinstance(st.input, list)
    it = ctx.mut_item(sid, index)
    if it.attempts == 0:
        ctx.take_slot()  # a first dispatch takes a slot; a retry keeps the one it holds
    it.attempts += 1
    it.status = "queued"
    it.waiting = None
    it.attempt_started_at = None
    _send(ctx, sid, st.input[index], it.attempts, 0, index, None)


def complete_item(ctx: Ctx, sid: str, index: int, output: Any) -> None:
    it = ctx.mut_item(sid, index)
    it.status = "completed"
    it.output = output
    it.waiting = None
    it.error = None
    st = ctx.mut(sid)
    st.items_done += 1
    ctx.release_slot()
    assert st.items is not None
    if st.items_done >= len(st.items):
        ctx.record(STEP_MAP_COMPLETED, {"items": len(st.items)}, sid=sid, attempt=st.attempts)
        complete_step(ctx, sid, [i.output for i in st.items])
    else:
        fill_map(ctx, sid)


# --- finishing ---------------------------------------------------------------------------


def complete_step(ctx: Ctx, sid: str, output: Any) -> None:
    st = ctx.mut(sid)
    holds_slot = ctx.kind(sid).holds_slot
    st.status = "completed"
    st.output = output
    st.error = None
    st.waiting = None
    st.finished_at = ctx.now
    st.attempt_started_at = None
    if holds_slot:
        ctx.release_slot()
    ctx.run.completion_order = [*ctx.run.completion_order, sid]
    ctx.finished_step(sid)


def agent_loop_config(ctx: Ctx, sid: str) -> AgentLoopConfig:
    cfg = ctx.g.steps[sid].config
    assert isinstance(cfg, AgentLoopConfig)
    return cfg
