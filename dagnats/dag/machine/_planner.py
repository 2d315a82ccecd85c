"""Planner steps: the fragment of steps a planner's handler returns joins the run (pure).

The handler returns ``{"steps": [StepDef...]}``. The fragment is checked by every rule of
DAGNATS-FORMAT.md (a bounded size, ids unique and not clashing, tasks in ``allowed_tasks``,
dependencies inside the fragment, acyclic, depth) before anything of it is applied; a bad
fragment fails the planner step (and so the run) with the rule's message. A good one is kept
in ``RunState.plans``; :func:`with_plans` derives the run's full definition from the
registered one plus those fragments (ids prefixed ``"<planner id>."``, types ``normal``,
fragment roots depending on the planner), so a snapshot and a replay see the same steps.
"""

from __future__ import annotations

import graphlib
from collections import OrderedDict
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from dagnats.dag.definition._translate import translate_validation_error
from dagnats.dag.definition.flow import CONTROL_PLANE
from dagnats.dag.definition.graph import step_config
from dagnats.dag.definition.models import MAX_DYNAMIC_STEPS, PlannerConfig, StepDef, WorkflowDef
from dagnats.dag.definition.rules import validate_step
from dagnats.dag.machine import _failure, _steps
from dagnats.dag.machine._context import Ctx, graph_of
from dagnats.dag.machine.inputs import json_type
from dagnats.dag.machine.state import RunState, StepState
from dagnats.errors import DefinitionError
from dagnats.protocol.events import PLANNER_MATERIALIZED, planner_materialized_data

# Options a fragment step may not carry: handlers are wired at definition time, task
# concurrency slots are released by the definition's steps, and a plan cannot grant itself
# the control plane.
_REFUSED_FIELDS = ("on_failure", "compensate", "max_task_concurrency", "config")


class FragmentError(ValueError):
    """A planner's fragment breaks a rule; the message names the planner, step and rule."""


def check_fragment(
    planner: StepDef,
    output: Any,
    *,
    workflow: str,
    taken_ids: Collection[str],
    dynamic_so_far: int,
) -> list[dict[str, Any]]:
    """Validate a planner's output; its steps (JSON, type normal or agent, ids unprefixed)."""
    pid = planner.id
    cfg = step_config(planner)
    if not isinstance(cfg, PlannerConfig):
        cfg = PlannerConfig()
    raws = output.get("steps") if isinstance(output, dict) else None
    if not isinstance(raws, list):
        got = "an object without a 'steps' list" if isinstance(output, dict) else json_type(output)
        raise FragmentError(
            f'planner step {pid!r}: its output must be an object {{"steps": [...]}}, got {got}'
        )
    if len(raws) > cfg.max_steps:
        raise FragmentError(
            f"planner step {pid!r}: the fragment has {len(raws)} steps; config.max_steps is "
            f"{cfg.max_steps}"
        )
    if dynamic_so_far + len(raws) > MAX_DYNAMIC_STEPS:
        raise FragmentError(
            f"planner step {pid!r}: the fragment's {len(raws)} steps would bring the run to "
            f"{dynamic_so_far + len(raws)} dynamic steps; the limit is {MAX_DYNAMIC_STEPS} "
            "per run (MAX_DYNAMIC_STEPS)"
        )
    steps = [_fragment_step(pid, i, raw, raws, workflow) for i, raw in enumerate(raws)]
    _check_ids(pid, steps, cfg, taken_ids)
    _check_graph(pid, steps, cfg)
    return [s.model_dump(mode="json", exclude_none=True) for s in steps]


def _fragment_step(pid: str, index: int, raw: Any, raws: list[Any], workflow: str) -> StepDef:
    where = f"planner step {pid!r}: fragment step at index {index}"
    if not isinstance(raw, dict):
        raise FragmentError(f"{where}: must be a step object, got {json_type(raw)}")
    name = raw.get("id") if isinstance(raw.get("id"), str) else None
    if name is not None:
        where = f"planner step {pid!r}: fragment step {name!r} (index {index})"
    for field in _REFUSED_FIELDS:
        if raw.get(field) is not None:
            raise FragmentError(f"{where}: field {field!r}: not allowed in a planner's fragment")
    caps = raw.get("required_capabilities")
    if isinstance(caps, list) and CONTROL_PLANE in caps:
        raise FragmentError(
            f"{where}: field 'required_capabilities': a fragment cannot grant {CONTROL_PLANE!r}"
        )
    # Every fragment step runs as a normal step; an agent is one, and keeps its type so
    # that the engine's agent routes still apply to it.
    data = {**raw, "type": "agent" if raw.get("type") == "agent" else "normal"}
    try:
        step = StepDef.model_validate(data)
    except ValidationError as exc:
        source = {"name": workflow, "steps": raws}
        problem = translate_validation_error(exc, source, loc_prefix=("steps", index))
        raise FragmentError(f"planner step {pid!r}: fragment: {problem}") from exc
    try:
        validate_step(step, workflow)
    except DefinitionError as exc:
        raise FragmentError(f"planner step {pid!r}: fragment: {exc}") from exc
    return step


def _check_ids(
    pid: str, steps: list[StepDef], cfg: PlannerConfig, taken_ids: Collection[str]
) -> None:
    seen: set[str] = set()
    allowed = set(cfg.allowed_tasks)
    for step in steps:
        where = f"planner step {pid!r}: fragment step {step.id!r}"
        if step.id in seen:
            raise FragmentError(f"{where}: field 'id': duplicate id in the fragment")
        seen.add(step.id)
        full = prefixed(pid, step.id)
        if full in taken_ids:
            raise FragmentError(f"{where}: field 'id': {full!r} is already a step of the run")
        if allowed and step.task_name not in allowed:
            raise FragmentError(
                f"{where}: field 'task': {step.task_name!r} is not in config.allowed_tasks "
                f"{sorted(allowed)}"
            )


def _check_graph(pid: str, steps: list[StepDef], cfg: PlannerConfig) -> None:
    ids = {s.id for s in steps}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step in steps:
        where = f"planner step {pid!r}: fragment step {step.id!r}: field 'depends_on'"
        if len(set(step.depends_on)) != len(step.depends_on):
            raise FragmentError(f"{where}: a dependency is listed more than once")
        for dep in step.depends_on:
            if dep not in ids:
                raise FragmentError(
                    f"{where}: {dep!r} is not a step of the fragment (dependencies must "
                    "stay inside it; its roots depend on the planner)"
                )
        sorter.add(step.id, *step.depends_on)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise FragmentError(f"planner step {pid!r}: the fragment has a cycle: {cycle}") from exc
    by_id = {s.id: s for s in steps}
    depth: dict[str, int] = {}
    for sid in order:
        depth[sid] = max((depth[d] + 1 for d in by_id[sid].depends_on), default=0)
        if depth[sid] > cfg.max_depth:
            raise FragmentError(
                f"planner step {pid!r}: fragment step {sid!r} is {depth[sid]} dependencies "
                f"deep; config.max_depth is {cfg.max_depth}"
            )


def prefixed(planner_id: str, step_id: str) -> str:
    return f"{planner_id}.{step_id}"


def fragment_steps(planner_id: str, raws: list[dict[str, Any]]) -> list[StepDef]:
    """The steps a checked fragment adds to the run (prefixed; roots on the planner)."""
    out = []
    for raw in raws:
        step = StepDef.model_validate(raw)
        deps = [prefixed(planner_id, d) for d in step.depends_on] or [planner_id]
        # No hand-written id starts with "<planner id>." (a rule of the definition), so a
        # prefixed id never clashes with one.
        # The task stays the fragment's own name (a step's task defaults to its id).
        update = {"id": prefixed(planner_id, step.id), "depends_on": deps, "task": step.task_name}
        out.append(step.model_copy(update=update))
    return out


_FULL: OrderedDict[tuple[int, str, tuple[tuple[str, int], ...]], tuple[WorkflowDef, WorkflowDef]]
_FULL = OrderedDict()
_FULL_CACHE_SIZE = 256


def with_plans(defn: WorkflowDef, run: RunState) -> WorkflowDef:
    """The run's full definition: ``defn`` plus the fragments its planners added."""
    if not run.plans:
        return defn
    key = (id(defn), run.run_id, tuple((p, len(s)) for p, s in run.plans.items()))
    hit = _FULL.get(key)
    if hit is not None and hit[0] is defn:
        _FULL.move_to_end(key)
        return hit[1]
    steps = list(defn.steps)
    for planner_id, raws in run.plans.items():
        steps.extend(fragment_steps(planner_id, raws))
    full = defn.model_copy(update={"steps": steps})
    _FULL[key] = (defn, full)
    if len(_FULL) > _FULL_CACHE_SIZE:
        _FULL.popitem(last=False)
    return full


def complete(ctx: Ctx, sid: str, output: Any) -> None:
    """A planner's handler returned: apply its fragment, or fail with the broken rule."""
    if sid in ctx.run.plans:  # a fragment is applied once, however often it is reported
        _steps.complete_step(ctx, sid, output)
        return
    dynamic = sum(len(s) for s in ctx.run.plans.values())
    try:
        raws = check_fragment(
            ctx.g.steps[sid],
            output,
            workflow=ctx.defn.name,
            taken_ids=ctx.g.steps.keys(),
            dynamic_so_far=dynamic,
        )
    except FragmentError as exc:
        err = _steps.non_retryable(sid, str(exc), "InvalidPlan")
        _failure.fail_for_good(ctx, sid, err, dead_letter=False)
        return
    ctx.run.plans = {**ctx.run.plans, sid: raws}
    full = with_plans(ctx.base_defn, ctx.run)
    assert ctx.table is not None, "advance() builds every Ctx with its step table"
    ctx.defn = full
    ctx.g = graph_of(full, ctx.table)
    new_ids = [prefixed(sid, str(r["id"])) for r in raws]
    for nid in new_ids:
        ctx.run.steps[nid] = StepState()
    data = planner_materialized_data(sid, new_ids, dynamic + len(raws))
    ctx.record(PLANNER_MATERIALIZED, data, sid=sid, attempt=ctx.st(sid).attempts)
    _steps.complete_step(ctx, sid, output)
