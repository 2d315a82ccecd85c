"""Go's spellings of "nothing", read as dagnats' absent fields (pure, before validation).

The Go DagNats encoder writes some fields even when they are empty (see
``docs/migrating-from-go.md``): ``"timeout": 0`` and ``"task": ""`` on every step,
``"depends_on": null``, ``"config": null``, ``"max_delay": 0`` in a retry policy. Each of
these means the same as leaving the field out, so the models' before-validators call these
functions to drop them: one canonical definition whichever way it was written, which is
what makes ``to_dict(format="go")`` -> ``from_dict`` give back an equal definition.

A worker step without a ``task`` gets its id as the task here, for the same reason: Go
always writes the task, dagnats lets it default to the id, and both must load equal.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dagnats.protocol.durations import DurationError, parse_duration

SCHEMA_KEY = "$schema"
# Fields whose Go "nothing" is a zero duration.
_STEP_ZERO_DURATIONS = ("timeout",)
# Fields Go may write as null; dagnats' absent value is an empty list or object.
_STEP_NULLABLE = ("depends_on", "config", "metadata", "required_capabilities")
_STEP_ZERO_INTS = ("max_task_concurrency", "retries")
_WORKFLOW_NULLABLE = ("cancel_on", "metadata")


def is_zero_duration(value: Any) -> bool:
    """True for ``0``, ``0.0``, ``"0"``, ``"0s"``, ``"0ms"``...: Go's "none"."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        try:
            return parse_duration(value) == 0
        except DurationError:
            return False
    return False


def drop_schema_key(data: Any) -> Any:
    """``"$schema"`` is allowed in every object of a definition (an editor's hint)."""
    if not isinstance(data, dict) or SCHEMA_KEY not in data:
        return data
    if not isinstance(data[SCHEMA_KEY], str):
        raise ValueError(f"'$schema' must be a string, got {type(data[SCHEMA_KEY]).__name__}")
    return {k: v for k, v in data.items() if k != SCHEMA_KEY}


def go_retry(data: Any) -> Any:
    """``max_delay: 0`` is Go's "no cap", which is dagnats' absent ``max_delay``."""
    if isinstance(data, dict) and is_zero_duration(data.get("max_delay")):
        return {k: v for k, v in data.items() if k != "max_delay"}
    return data


def go_step(data: dict[str, Any], task_types: Collection[str]) -> dict[str, Any]:
    """A step's Go spellings of nothing dropped; a worker step's task defaulted to its id."""
    out = dict(data)
    for key in _STEP_NULLABLE:
        if key in out and out[key] is None:
            del out[key]
    for key in _STEP_ZERO_DURATIONS:
        if key in out and is_zero_duration(out[key]):
            del out[key]
    for key in _STEP_ZERO_INTS:
        if out.get(key) == 0 and not isinstance(out.get(key), bool):
            del out[key]
    kind = out.get("type", "normal")
    if out.get("type") is None:
        out.pop("type", None)
        kind = "normal"
    is_worker = isinstance(kind, str) and kind in task_types
    if not is_worker and out.get("task") in ("", None):
        out.pop("task", None)
    elif is_worker and out.get("task") is None and isinstance(out.get("id"), str):
        if "." not in out["id"]:  # a dotted id is no task name: the rules ask for one
            out["task"] = out["id"]
    return out


def go_workflow(data: Any) -> Any:
    """The workflow's Go spellings of nothing: ``timeout: 0``, ``idempotency_key: ""``, nulls."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if "timeout" in out and is_zero_duration(out["timeout"]):
        del out["timeout"]
    if out.get("idempotency_key") == "":
        del out["idempotency_key"]
    for key in _WORKFLOW_NULLABLE:
        if key in out and out[key] is None:
            del out[key]
    return out
