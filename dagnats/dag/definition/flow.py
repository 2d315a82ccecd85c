"""Flow-control options: their rules, and the pure lookups the engine and API make with them.

``priority``, ``sticky``, ``singleton``, ``concurrency.max_steps`` (workflow) and
``keyed_rate_limit``, ``required_capabilities``, budgets (step). Their paths are Go's dot
paths: ``"tenant"`` and ``"input.tenant"`` name the same value (Go writes the first form,
dagnats' other paths the second), so both are accepted.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dagnats.dag.definition.conditions import ConditionError, parse_path, resolve_segments
from dagnats.dag.definition.models import (
    MAX_PRIORITY_OFFSET_S,
    MAX_PRIORITY_RULES,
    AgentLoopConfig,
    StepDef,
    WorkflowDef,
)
from dagnats.errors import DefinitionError

CONTROL_PLANE = "control-plane"
# Capabilities dagnats knows; another name is refused so a typo is not silently powerless.
KNOWN_CAPABILITIES = frozenset({CONTROL_PLANE})


def path_segments(path: str) -> tuple[str, ...]:
    """The segments of a dot path into a document, without a leading ``input``."""
    segments = parse_path(path)
    if segments[0] == "input" and len(segments) > 1:
        return segments[1:]
    return segments


def value_at(path: str, document: Any) -> Any:
    """The value at ``path`` in ``document`` (``None`` when missing)."""
    return resolve_segments(path_segments(path), document)


def key_text(value: Any) -> str:
    """A value as Go compares it: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def key_digest(value: Any) -> str:
    """A KV-safe token for a key value (any JSON value; ``None`` when missing)."""
    return hashlib.sha256(key_text(value).encode()).hexdigest()[:32]


def priority_offset_s(defn: WorkflowDef, run_input: Any) -> int:
    """Seconds added to a pending run's arrival time (earlier sorts first); 0 without rules."""
    rule = defn.priority
    if rule is None:
        return 0
    value = value_at(rule.key, run_input)
    if value is None:
        return rule.default_offset
    return rule.rules.get(key_text(value), rule.default_offset)


def singleton_scope(defn: WorkflowDef, run_input: Any) -> str | None:
    """The token naming the one active run a start competes with; None if not a singleton."""
    if defn.singleton is None:
        return None
    if defn.singleton.key is None:
        return "all"
    return key_digest(value_at(defn.singleton.key, run_input))


# --- rules -------------------------------------------------------------------------------


def _path_problem(path: str) -> str | None:
    try:
        path_segments(path)
    except ConditionError as exc:
        return str(exc)
    return None


def check_workflow_flow(defn: WorkflowDef) -> None:
    """``priority``, ``sticky``, ``singleton``: the rules a model cannot see alone."""
    wf = f"workflow {defn.name!r}"
    if defn.priority is not None:
        problem = _path_problem(defn.priority.key)
        if problem:
            raise DefinitionError(f"{wf}: field 'priority.key': {problem}", field="priority.key")
        count = len(defn.priority.rules)
        if not 1 <= count <= MAX_PRIORITY_RULES:
            raise DefinitionError(
                f"{wf}: field 'priority.rules': needs 1 to {MAX_PRIORITY_RULES} rules "
                f"(MAX_PRIORITY_RULES), got {count}",
                field="priority.rules",
            )
        for value, offset in defn.priority.rules.items():
            if not -MAX_PRIORITY_OFFSET_S <= offset <= MAX_PRIORITY_OFFSET_S:
                field = "priority.rules"
                raise DefinitionError(
                    f"{wf}: field {field!r}: offset of {value!r} must be between "
                    f"-{MAX_PRIORITY_OFFSET_S} and {MAX_PRIORITY_OFFSET_S} seconds, got {offset}",
                    field=field,
                )
    if defn.singleton is not None and defn.singleton.key is not None:
        problem = _path_problem(defn.singleton.key)
        if problem:
            raise DefinitionError(f"{wf}: field 'singleton.key': {problem}", field="singleton.key")
    if defn.sticky:
        _check_sticky(defn)


def _check_sticky(defn: WorkflowDef) -> None:
    wf = f"workflow {defn.name!r}"
    if defn.sticky == "hard" and not defn.timeout:
        raise DefinitionError(
            f"{wf}: field 'sticky': 'hard' needs a workflow 'timeout' > 0 (a run bound to a "
            "worker that is gone would otherwise wait forever)",
            field="sticky",
        )
    for step in defn.steps:
        if step.worker_group is not None:
            raise DefinitionError(
                f"{wf}: field 'sticky': cannot be combined with 'worker_group' (step "
                f"{step.id!r} sets {step.worker_group!r}); a run is bound to one worker",
                step_id=step.id,
                field="sticky",
            )


def check_step_flow(step: StepDef, fail: Any) -> None:
    """``keyed_rate_limit``, ``required_capabilities`` and agent-loop budgets of one step.

    ``fail(step, field, rule)`` builds the DefinitionError (the rules module's own helper).
    """
    krl = step.keyed_rate_limit
    if krl is not None:
        if step.rate_limit is not None:
            raise fail(step, "keyed_rate_limit", "cannot be combined with 'rate_limit'")
        problem = _path_problem(krl.key)
        if problem:
            raise fail(step, "keyed_rate_limit.key", problem)
        if krl.units > krl.limit:
            raise fail(
                step,
                "keyed_rate_limit.units",
                f"a task takes {krl.units} tokens but the bucket holds only {krl.limit} "
                "(units must be <= limit)",
            )
    for cap in step.required_capabilities:
        if cap not in KNOWN_CAPABILITIES:
            raise fail(
                step,
                "required_capabilities",
                f"unknown capability {cap!r}; known: {sorted(KNOWN_CAPABILITIES)}",
            )
    cfg = step.config
    if isinstance(cfg, AgentLoopConfig):
        _check_budgets(step, cfg, fail)


def _check_budgets(step: StepDef, cfg: AgentLoopConfig, fail: Any) -> None:
    for name in ("budget_warn_at", "budget_force_at"):
        at = getattr(cfg, name)
        if at is not None and at > cfg.max_iterations:
            raise fail(
                step,
                f"config.{name}",
                f"must be <= max_iterations ({cfg.max_iterations}), got {at}",
            )
    warn, force = cfg.budget_warn_at, cfg.budget_force_at
    if warn is not None and force is not None and warn > force:
        raise fail(
            step,
            "config.budget_warn_at",
            f"must be <= budget_force_at ({force}), got {warn}",
        )
