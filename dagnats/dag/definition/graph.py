"""Graph facts of a definition: handlers, roots, sinks, dependents, order, step configs.

Pure helpers shared by the rules (``rules.py``) and the run machine (``dag.machine``).
"""

from __future__ import annotations

import graphlib

from dagnats.dag.definition.models import (
    ApprovalConfig,
    MapConfig,
    RespondConfig,
    StepConfig,
    StepDef,
    WorkflowDef,
)
from dagnats.errors import DefinitionError

# Defaults for step types whose config may be omitted.
_DEFAULT_CONFIGS: dict[str, type[MapConfig | ApprovalConfig | RespondConfig]] = {
    "map": MapConfig,
    "approval": ApprovalConfig,
    "respond": RespondConfig,
}


def handler_steps(defn: WorkflowDef) -> frozenset[str]:
    """Ids named by any ``on_failure`` or ``compensate``: they never start on their own."""
    out: set[str] = set()
    for s in defn.steps:
        if s.on_failure is not None:
            out.add(s.on_failure)
        if s.compensate is not None:
            out.add(s.compensate)
    return frozenset(out)


def root_steps(defn: WorkflowDef) -> tuple[str, ...]:
    """Non-handler steps without dependencies, in definition order: they start a run."""
    handlers = handler_steps(defn)
    return tuple(s.id for s in defn.steps if not s.depends_on and s.id not in handlers)


def sink_steps(defn: WorkflowDef) -> tuple[str, ...]:
    """Non-handler steps no other step depends on, in definition order: the run's result."""
    handlers = handler_steps(defn)
    depended_on = {dep for s in defn.steps for dep in s.depends_on}
    return tuple(s.id for s in defn.steps if s.id not in depended_on and s.id not in handlers)


def dependents(defn: WorkflowDef) -> dict[str, tuple[str, ...]]:
    """Step id -> ids of the steps that list it in ``depends_on`` (definition order)."""
    out: dict[str, list[str]] = {s.id: [] for s in defn.steps}
    for s in defn.steps:
        for dep in s.depends_on:
            out.setdefault(dep, []).append(s.id)
    return {k: tuple(v) for k, v in out.items()}


def topological_order(defn: WorkflowDef) -> tuple[str, ...]:
    """All step ids, dependencies first; ties keep definition order. Raises on a cycle."""
    index = {s.id: i for i, s in enumerate(defn.steps)}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for s in defn.steps:
        sorter.add(s.id, *s.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1]
        raise DefinitionError(
            f"workflow {defn.name!r}: field 'depends_on': cycle: {' -> '.join(cycle)} "
            "('a -> b' means b depends on a); a workflow must be acyclic",
            step_id=cycle[0],
            field="depends_on",
        ) from exc
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda i: index.get(i, len(index)))
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)


def step_config(step: StepDef) -> StepConfig | None:
    """The step's config, or the type's default config when it may be omitted."""
    if step.config is not None:
        return step.config
    default = _DEFAULT_CONFIGS.get(step.type)
    return default() if default is not None else None
