"""Input resolution for ``advance``: a step's input, ``skip_if`` scope, ``until`` and ``match``.

All pure. Failures are reported as :class:`InputError` with a message that names the step
and the field, because they become the step's (non-retryable) error as users see it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from dagnats.dag.definition.conditions import (
    ConditionError,
    as_match_text,
    go_compare,
    input_value,
    lookup,
    parse_path,
)
from dagnats.dag.definition.formrules import step_ref
from dagnats.dag.definition.models import EventMatch, SkipIf, StepDef
from dagnats.dag.machine.state import RunState, StepState


class InputError(ValueError):
    """A step's input, condition or config value cannot be resolved at run time."""


def dependency_value(st: StepState) -> Any:
    """What a finished dependency hands on: its output; ``None`` for a skipped step.

    A ``recovered`` step's output is its on_failure handler's output (substituted when the
    handler completed), so it needs no special case here.
    """
    return None if st.status == "skipped" else st.output


def resolve_step_input(step: StepDef, run: RunState) -> Any:
    """Root step: the run input; one dependency: its output; several: ``{dep_id: output}``."""
    deps = step.depends_on
    if not deps:
        return run.input
    if len(deps) == 1:
        return dependency_value(run.steps[deps[0]])
    return {dep: dependency_value(run.steps[dep]) for dep in deps}


class _StepsView(Mapping[str, Any]):
    """``steps.<id>.output|status`` for conditions, built lazily.

    Most ``skip_if`` expressions only look at ``input``; building a dict over every step of a
    large run for each ready step would make readiness O(steps) for nothing.
    """

    __slots__ = ("_steps",)

    def __init__(self, steps: Mapping[str, StepState]) -> None:
        self._steps = steps

    def __getitem__(self, key: str) -> Any:
        st = self._steps[key]
        return {"output": st.output, "status": st.status}

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


def condition_scope(step_input: Any, run: RunState) -> dict[str, Any]:
    """The scope ``skip_if`` is evaluated in (see :mod:`dagnats.dag.definition.conditions`)."""
    return {"input": step_input, "run": {"input": run.input}, "steps": _StepsView(run.steps)}


def path_scope(step_input: Any, run: RunState) -> dict[str, Any]:
    """The scope of ``until`` and ``match`` paths: the step input and the run input."""
    return {"input": step_input, "run": {"input": run.input}}


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages users read ("expects an array, got object")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp; a missing zone is read as UTC. ``None`` if it is not one."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def resolve_until(step_id: str, until: str, step_input: Any, run: RunState) -> datetime:
    """A sleep's wake-up time: an RFC 3339 literal, or a path to one in the step/run input."""
    if until[:1].isdigit():
        when = parse_timestamp(until)
        if when is None:
            raise InputError(
                f"sleep step {step_id!r}: config 'until' {until!r} is not an RFC 3339 timestamp"
            )
        return when
    try:
        value = lookup(until, path_scope(step_input, run))
    except ConditionError as exc:
        raise InputError(f"sleep step {step_id!r}: config 'until': {exc}") from exc
    if not isinstance(value, str):
        raise InputError(
            f"sleep step {step_id!r}: config 'until' path {until!r} must hold an RFC 3339 "
            f"timestamp string, got {json_type(value)}"
        )
    when = parse_timestamp(value)
    if when is None:
        raise InputError(
            f"sleep step {step_id!r}: config 'until' path {until!r} holds {value!r}, which is "
            "not an RFC 3339 timestamp"
        )
    return when


def resolve_any_match(
    where: str, match: EventMatch | Mapping[str, str], step_input: Any, run: RunState
) -> tuple[dict[str, Any], bool]:
    """A waiter's ``(match, as_text)`` from either form of a ``match`` config."""
    if isinstance(match, EventMatch):
        return resolve_go_match(where, match, run), True
    return resolve_match(where, match, step_input, run), False


def resolve_match(
    step_id: str, match: Mapping[str, str], step_input: Any, run: RunState
) -> dict[str, Any]:
    """``{event_field: value}`` for a waiter, each value read from its path.

    A path that resolves to nothing is an error rather than a ``None`` to match: a waiter
    matching "field is missing" would swallow unrelated events.
    """
    scope = path_scope(step_input, run)
    out: dict[str, Any] = {}
    for field, path in match.items():
        try:
            value = lookup(path, scope)
        except ConditionError as exc:
            raise InputError(
                f"wait_for_event step {step_id!r}: config 'match' field {field!r}: {exc}"
            ) from exc
        if value is None:
            raise InputError(
                f"wait_for_event step {step_id!r}: config 'match' field {field!r}: path "
                f"{path!r} resolved to nothing"
            )
        out[field] = value
    return out


# --- Go's forms ----------------------------------------------------------------------------


def skip_object_holds(cond: SkipIf, run: RunState) -> bool:
    """Go's ``{step_id, field, op, value}``: the dependency's output object's top-level
    ``field`` compared with ``value`` (see :func:`go_compare`); anything missing -> false."""
    st = run.steps.get(cond.step_id)
    output = dependency_value(st) if st is not None else None
    if not isinstance(output, Mapping) or cond.field not in output:
        return False
    return go_compare(cond.op, output[cond.field], cond.value)


def resolve_go_match(where: str, match: EventMatch, run: RunState) -> dict[str, Any]:
    """``{left: text}`` for a waiter from Go's match: ``right`` read from the run input
    (``input.<path>``) or a completed step's output (``step.<id>.output.<path>``), as text.

    Nothing there (or an object) is an error, as in the dagnats form: a waiter matching
    "missing" would swallow unrelated events.
    """
    segments = parse_path(match.right)
    value: Any = None
    if segments[0] == "input":
        value = lookup(match.right, {"input": run.input})
    elif (ref := step_ref(match.right, run.steps)) is not None:
        st = run.steps[ref[0]]
        if st.status in ("completed", "recovered"):
            value = lookup(f"output.{ref[1]}", {"output": st.output})
    text = as_match_text(value)
    if text is None:
        raise InputError(
            f"{where}: config 'match' right {match.right!r} resolved to "
            f"{json_type(value)}, not a value to compare"
        )
    return {match.left: text}


def resolve_input_instant(step_id: str, path: str, run: RunState) -> datetime:
    """Go's ``until_input_path``: the run input's RFC 3339 string or epoch milliseconds."""
    value = input_value(path, run.input)
    where = f"sleep step {step_id!r}: config 'until_input_path' {path!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InputError(f"{where}: {value!r} is not a time in epoch ms") from exc
    if isinstance(value, str):
        when = parse_timestamp(value)
        if when is not None:
            return when
        raise InputError(f"{where} holds {value!r}, which is not an RFC 3339 timestamp")
    raise InputError(
        f"{where} must hold an RFC 3339 string or epoch milliseconds, got {json_type(value)}"
    )


def next_cron_instant(expression: str, after: datetime) -> datetime:
    """The first minute matching a 5-field cron expression (UTC) strictly after ``after``."""
    base = after.astimezone(UTC)
    nxt = croniter(expression, base).get_next(datetime)
    if not isinstance(nxt, datetime):
        raise InputError(f"cron expression {expression!r} has no next time")
    if nxt.tzinfo is None:
        nxt = nxt.replace(tzinfo=UTC)
    # croniter answers in minutes; a start exactly on a match waits for the next one.
    return nxt if nxt > base else nxt + timedelta(minutes=1)
