"""Retrying a whole run in place (``workflow.retry_requested``): resume from its failed steps.

A failed or cancelled run goes back to ``running``. What it already did stays: completed,
skipped and recovered steps keep their state and outputs and never run again. What did not
finish comes back:

- a worker step (normal, agent loop) that had been dispatched is dispatched again with the
  input it had (an agent loop resumes at the iteration it was on), as the next attempt, so
  every task, timer and result id is new; its retry policy counts afresh from there;
- a map step that had fanned out keeps its completed instances and sends the others again;
- any other unfinished step (never begun, cancelled, a wait, a sleep, an approval, a
  sub-workflow, a handler) is reset to never-begun and begins again once its dependencies
  are satisfied, exactly as in a first run (waiting steps start over: a sleep sleeps its
  whole duration, an approval mints a new token, a sub-workflow starts a new child run).

The run's own clock restarts too: its ``timeout`` counts from the retry, and its
``cancel_on`` rules watch for events from the retry on. A workflow with ``max_runs`` (or a
singleton) queues for a slot again, like a new run.

Refused (the state is returned unchanged; the API says why before it publishes): runs that
are not failed or cancelled, compensated runs and runs that failed while compensating
(their completed work was partly undone), sub-workflow runs attached to a parent (the
parent's step decides; retry the parent), and a retry number that is not the run's next.
"""

from __future__ import annotations

from dagnats.dag.machine import _steps
from dagnats.dag.machine._context import Ctx, ns_delta
from dagnats.dag.machine.actions import AdmitRun, RegisterWaiter
from dagnats.dag.machine.inputs import InputError, resolve_any_match, resolve_step_input
from dagnats.dag.machine.state import RunState, StepState
from dagnats.protocol.events import CANCEL_WAITER_PREFIX, WORKFLOW_PENDING

RETRYABLE_STATUSES = frozenset({"failed", "cancelled"})
# Step states a retry keeps as they are: the work is done (or was deliberately skipped).
_DONE = frozenset({"completed", "skipped"})


def refusal(run: RunState) -> str | None:
    """Why ``run`` cannot be retried in place, or ``None`` when it can."""
    rid = run.run_id
    if run.status not in RETRYABLE_STATUSES:
        if run.status == "compensated":
            return (
                f"run '{rid}' was compensated: its completed steps were undone, so it cannot "
                "resume in place (rerun it instead)"
            )
        return f"run '{rid}' is {run.status}; only a failed or cancelled run can be retried"
    if run.compensating is not None:
        return (
            f"run '{rid}' failed while compensating: its completed steps were partly undone, "
            "so it cannot resume in place (rerun it instead)"
        )
    if run.parent is not None:
        return (
            f"run '{rid}' is a sub-workflow run of run '{run.parent.run_id}' (step "
            f"'{run.parent.step_id}'); retry the parent run instead"
        )
    return None


def applies(run: RunState, data: dict[str, object]) -> bool:
    """Whether a ``workflow.retry_requested`` with ``data`` is the run's next retry."""
    retry = data.get("retry")
    if isinstance(retry, bool) or not isinstance(retry, int):
        return False
    return retry == run.retries + 1 and refusal(run) is None


def on_retry(ctx: Ctx) -> None:
    """Resume the terminal run in ``ctx`` (``applies`` was checked by the caller)."""
    run = ctx.run
    run.retries += 1
    run.status = "running"
    run.output = None
    run.error = None
    run.finished_at = None
    run.failed_step = None
    resume: list[str] = []
    for sid in ctx.g.order:
        if _reset(ctx, sid):
            resume.append(sid)
    limit = _max_runs(ctx)
    if limit is not None:
        # Like a new run, it waits for a slot; ``workflow.admitted`` resumes it.
        run.status = "pending"
        ctx.record(WORKFLOW_PENDING, {"max_runs": limit, "retry": run.retries})
        ctx.emit(AdmitRun(run_id=ctx.run_id, workflow=ctx.defn.name, max_runs=limit))
        return
    proceed(ctx)


def proceed(ctx: Ctx) -> None:
    """Start a resumed run's work (at once, or once a pending retried run is admitted)."""
    ctx.run.status = "running"
    _rearm(ctx)
    for sid in ctx.g.order:
        if ctx.run.status != "running":
            return  # a step that began failed the run again
        st = ctx.st(sid)
        if sid in ctx.g.handlers:
            continue  # handlers start when a failure asks for them
        if _resumable(ctx, sid, st):
            _resume_begun(ctx, sid)
        elif _steps.unbegun(st) and _deps_satisfied(ctx, sid):
            _steps.begin(ctx, sid, resolve_step_input(ctx.g.steps[sid], ctx.run))
    # Nothing may be left to do (everything unfinished was skipped): let settle decide.
    ctx.finished_any = True


def resumed_pending(run: RunState) -> bool:
    """A pending run that is waiting for its slot after a retry (not a first admission)."""
    return run.status == "pending" and run.retries > 0


# --- helpers -----------------------------------------------------------------------------


def _max_runs(ctx: Ctx) -> int | None:
    c = ctx.defn.concurrency
    if ctx.defn.singleton:
        return 1
    return c.max_runs if c is not None else None


def _deps_satisfied(ctx: Ctx, sid: str) -> bool:
    return all(_steps.satisfied(ctx.st(d)) for d in ctx.g.steps[sid].depends_on)


def _resumable(ctx: Ctx, sid: str, st: StepState) -> bool:
    """A worker step (or a fanned-out map) that a retry sends again without beginning anew.

    ``_reset`` marks them ``pending`` / ``waiting="slot"``: no timer acts on that state
    (a stale retry timer of the ended run must not dispatch while the run waits for a
    slot), and a step ``dispatch`` cannot send for want of a ``max_steps`` slot waits
    in that very state for ``fill_slots``.
    """
    return st.status == "pending" and st.waiting == "slot" and ctx.is_task(sid)


def _reset(ctx: Ctx, sid: str) -> bool:
    """Put an unfinished step back; True when it is to be resumed rather than begun."""
    st = ctx.st(sid)
    if st.status in _DONE or (st.status == "recovered" and st.waiting is None):
        return False
    if _steps.unbegun(st):
        return False
    m = ctx.mut(sid)
    m.error = None
    m.finished_at = None
    m.attempt_started_at = None
    m.status = "pending"
    kind = ctx.kind(sid)
    if kind.worker_task and (m.attempts > 0 or m.items is not None) and sid not in ctx.g.handlers:
        # Resumed where it stopped; ``waiting="slot"`` marks it until ``proceed`` sends it.
        m.waiting = "slot"
        m.retry_base = m.attempts
        return True
    # Begun anew: input re-resolved, attempts kept so its ids are new.
    m.waiting = None
    m.items = None
    m.items_done = 0
    m.output = None
    m.child_run_id = None
    m.started_at = None
    return False


def _resume_begun(ctx: Ctx, sid: str) -> None:
    m = ctx.mut(sid)
    m.waiting = None
    if m.items is None:
        _steps.dispatch(ctx, sid)
        return
    # A map: completed instances stay, the others go again (dispatched ones at once, as
    # they held their places in the map's window; never-sent ones in order as room allows).
    m.status = "running"
    for i, it in enumerate(m.items):
        if it.status == "completed":
            continue
        item = ctx.mut_item(sid, i)
        item.status = "pending"
        item.error = None
        item.waiting = None
        item.attempt_started_at = None
        item.retry_base = item.attempts
        if item.attempts > 0:
            _steps.dispatch_item(ctx, sid, i)
    _steps.fill_map(ctx, sid)


def _rearm(ctx: Ctx) -> None:
    """The run's timeout counts from the retry; ``cancel_on`` watches from now on."""
    run = ctx.run
    for i, rule in enumerate(ctx.defn.cancel_on):
        try:
            match, as_text = resolve_any_match(f"cancel_on[{i}]", rule.match, run.input, run)
        except InputError:
            continue
        ctx.emit(
            RegisterWaiter(
                run_id=ctx.run_id,
                step_id=f"{CANCEL_WAITER_PREFIX}{i}",
                event=rule.event,
                match=match,
                lookback_ns=1,  # the event that ended the run before must not end it again
                registered_at=ctx.now,
                as_text=as_text,
            )
        )
    timeout = ctx.defn.timeout
    if timeout is not None:
        ctx.timer("workflow_timeout", ctx.now + ns_delta(timeout), {"retry": run.retries})


def retry_number(data: dict[str, object]) -> int:
    """The retry a ``workflow_timeout`` timer belongs to (0: armed at the run's start)."""
    value = data.get("retry", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
