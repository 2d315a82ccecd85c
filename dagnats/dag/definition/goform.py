"""Write a definition in the Go DagNats form (pure): ``Workflow.to_dict(format="go")``.

What Go's encoder writes: durations as integer nanoseconds; on every step ``task`` (``""`` on
engine-run steps), ``type``, ``"timeout": 0`` when there is none, ``depends_on`` and
``config`` (``null`` when empty); in a retry policy ``initial_delay`` and ``max_delay``
(``0`` = no cap); ``aux_steps`` naming the handler steps. Everything dagnats keeps beyond
Go's format (an expression ``skip_if``, the dagnats ``match`` map, ``lookback``...) is
written in dagnats' spelling, so the round trip ``load_definition(to_go_dict(d)) == d``
holds for every definition dagnats accepts (Go itself ignores fields it does not know).
"""

from __future__ import annotations

from typing import Any

from dagnats.dag.definition.formrules import handler_steps
from dagnats.dag.definition.models import TASK_STEP_TYPES, WorkflowDef
from dagnats.protocol.durations import NANOSECONDS_CONTEXT

# Go's field order at the top (the rest follow in the model's order).
_TOP_FIRST = ("$schema", "name", "version", "steps")
_STEP_FIRST = ("id", "task", "type", "depends_on", "timeout")
# dagnats-only containers that are noise when empty.
_DROP_EMPTY = ("metadata", "cancel_on", "required_capabilities", "priority", "sticky", "singleton")


def to_go_dict(defn: WorkflowDef) -> dict[str, Any]:
    """The definition as Go's encoder would write it (see the module docstring)."""
    raw = defn.model_dump(
        mode="json", by_alias=True, exclude_none=True, context=NANOSECONDS_CONTEXT
    )
    raw.pop("aux_steps", None)
    steps = [_go_step(step) for step in raw.pop("steps")]
    for key in ("default_retry",):
        if key in raw:
            raw[key] = _go_retry(raw[key])
    for cancel in raw.get("cancel_on", []):
        _go_match(cancel)
    _drop_empty(raw)
    out: dict[str, Any] = {k: raw.pop(k) for k in _TOP_FIRST if k in raw}
    out["steps"] = steps
    out.update(raw)
    aux = handler_steps(defn)
    if aux:
        out["aux_steps"] = {sid: True for sid in sorted(aux)}
    return out


def _go_step(step: dict[str, Any]) -> dict[str, Any]:
    kind = step.get("type", "normal")
    step["type"] = kind
    if kind not in TASK_STEP_TYPES:
        step["task"] = ""
    step.setdefault("timeout", 0)
    step["depends_on"] = step.get("depends_on") or None
    if "retry" in step:
        step["retry"] = _go_retry(step["retry"])
    config = step.get("config")
    if isinstance(config, dict):
        _go_match(config)
    step["config"] = config
    _drop_empty(step)
    ordered = {k: step.pop(k) for k in _STEP_FIRST if k in step}
    ordered.update(step)
    return ordered


def _go_retry(policy: dict[str, Any]) -> dict[str, Any]:
    policy.setdefault("max_delay", 0)  # Go's "no cap"
    return policy


def _go_match(holder: dict[str, Any]) -> None:
    match = holder.get("match")
    if isinstance(match, dict) and {"left", "right"} <= match.keys():
        match.setdefault("op", "eq")


def _drop_empty(obj: dict[str, Any]) -> None:
    for key in _DROP_EMPTY:
        if key in obj and not obj[key]:
            del obj[key]
