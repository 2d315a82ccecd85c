"""The rules of the Go forms in a definition (pure): ``aux_steps``, ``skip_if`` objects,
``match: {left, op, right}``, dot paths, cron expressions and NATS subjects.

Kept apart from :mod:`dagnats.dag.definition.rules` (which calls them) so that module stays
about the graph; each function returns or raises a problem that names the field and rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from croniter import croniter

from dagnats.dag.definition.conditions import GO_OPS, ConditionError, parse_path
from dagnats.dag.definition.models import (
    MAX_APPROVAL_TIMEOUT_NS,
    MAX_SLEEP_NS,
    AgentLoopConfig,
    ApprovalConfig,
    EventMatch,
    RespondConfig,
    SkipIf,
    SleepConfig,
    StepDef,
    WorkflowDef,
)
from dagnats.errors import DefinitionError
from dagnats.protocol.durations import format_duration

Fail = Callable[[StepDef, str, str], DefinitionError]
"""``fail(step, field, rule)``: the rules module's error for a step's field."""


def handler_steps(defn: WorkflowDef) -> set[str]:
    """The ids of steps named as some step's ``on_failure`` or ``compensate`` (Go's aux)."""
    return {t for s in defn.steps for t in (s.on_failure, s.compensate) if t is not None}


def check_aux_steps(defn: WorkflowDef, aux: dict[str, bool]) -> None:
    inferred = handler_steps(defn)
    ids = {s.id for s in defn.steps}
    for sid, flag in aux.items():
        if sid not in ids:
            raise DefinitionError(
                f"workflow {defn.name!r}: field 'aux_steps': unknown step {sid!r}",
                step_id=sid,
                field="aux_steps",
            )
        if flag != (sid in inferred):
            rule = (
                "is listed as a handler step but no step names it in on_failure or compensate"
                if flag
                else "is listed as not a handler step but a step names it in on_failure or "
                "compensate"
            )
            raise DefinitionError(
                f"step {sid!r}: field 'aux_steps': {rule}", step_id=sid, field="aux_steps"
            )
    for sid in sorted(inferred - {k for k, v in aux.items() if v}):
        raise DefinitionError(
            f"step {sid!r}: field 'aux_steps': is a handler step (named in on_failure or "
            "compensate) but is missing from aux_steps",
            step_id=sid,
            field="aux_steps",
        )


def dot_path_problem(path: str) -> str | None:
    try:
        parse_path(path)
    except ConditionError as exc:
        return str(exc)
    return None


def step_ref(right: str, steps: Iterable[str]) -> tuple[str, str] | None:
    """``(step id, path)`` of ``step.<id>.output.<path>`` for a step among ``steps``; the
    id may be dotted (``step.order.quote.output.total``). Go splits at the second dot, so
    it cannot name a dotted id; here the longest id that fits wins (ids are unique, and a
    shorter one would leave ``output`` in the path)."""
    best: tuple[str, str] | None = None
    for sid in steps:
        prefix = f"step.{sid}.output."
        if right.startswith(prefix) and len(right) > len(prefix):
            if best is None or len(sid) > len(best[0]):
                best = (sid, right[len(prefix) :])
    return best


def go_match_problem(match: EventMatch, steps: set[str] | None) -> tuple[str, str] | None:
    """(field, rule) of a problem with Go's ``{left, op, right}``; ``steps`` are the step ids
    a ``step.<id>.output`` right side may name (``None``: none, as in ``cancel_on``)."""
    if match.op != "eq":
        return "op", f'only "eq" is supported (got {json.dumps(match.op)})'
    problem = dot_path_problem(match.left)
    if problem:
        return "left", problem
    try:
        segments = parse_path(match.right)
    except ConditionError as exc:
        return "right", str(exc)
    if segments[0] == "input" and len(segments) >= 2:
        return None
    if steps is not None and len(segments) >= 4 and segments[0] == "step":
        if step_ref(match.right, steps) is not None:
            return None
        if "output" in segments[2:-1]:
            sid = ".".join(segments[1 : segments.index("output", 2)])
            return "right", f"unknown step {sid!r} in {match.right!r} (not a dependency)"
    forms = "'input.<path>'" + (" or 'step.<id>.output.<path>'" if steps is not None else "")
    return "right", f"must be {forms} (got {match.right!r})"


def check_skip_object(step: StepDef, cond: SkipIf, fail: Fail) -> None:
    """Go's ``skip_if`` object: ``step_id`` among the dependencies, a known ``op``."""
    if cond.step_id not in step.depends_on:
        raise fail(
            step,
            "skip_if.step_id",
            f"must be one of the step's depends_on (got {cond.step_id!r})",
        )
    if cond.op not in GO_OPS:
        raise fail(step, "skip_if.op", f"must be one of {' '.join(GO_OPS)} (got {cond.op!r})")


SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def cron_problem(expression: str) -> str | None:
    """Why a 5-field cron expression is unusable, or None."""
    fields = expression.split()
    if len(fields) != 5:
        return f"must have 5 fields (minute hour day month weekday), got {len(fields)}"
    if not croniter.is_valid(expression):
        return f"invalid cron expression {expression!r}"
    return None


def input_path_problem(path: str, *, allow_run: bool) -> str | None:
    """Return a problem with a path into the (step or run) input, or None if it is fine."""
    try:
        segments = parse_path(path)
    except ConditionError as exc:
        return str(exc)
    if segments[0] == "input" or (allow_run and segments[:2] == ("run", "input")):
        return None
    roots = "'input' or 'run.input'" if allow_run else "'input'"
    return f"path {path!r} must start with {roots}"


def check_approval(step: StepDef, cfg: Any, fail: Fail) -> None:
    assert isinstance(cfg, ApprovalConfig)
    if not 0 < cfg.timeout <= MAX_APPROVAL_TIMEOUT_NS:
        raise fail(
            step,
            "config.timeout",
            f"must be > 0 and <= 168h (MAX_APPROVAL_TIMEOUT), got {format_duration(cfg.timeout)}",
        )
    if cfg.subject is not None and not SUBJECT.match(cfg.subject):
        raise fail(
            step,
            "config.subject",
            "must be a NATS subject: dot-separated tokens of letters, digits, '_' and '-' "
            f"(got {cfg.subject!r})",
        )


def check_sleep(step: StepDef, cfg: Any, fail: Fail) -> None:
    assert isinstance(cfg, SleepConfig)
    given = [
        n for n in ("duration", "until", "cron", "until_input_path") if getattr(cfg, n) is not None
    ]
    if len(given) != 1:
        raise fail(
            step,
            "config",
            "a 'sleep' step needs exactly one of 'duration', 'until', 'cron' or "
            f"'until_input_path' (got {len(given)}: {', '.join(given) or 'none'})",
        )
    if cfg.cron is not None:
        problem = cron_problem(cfg.cron)
        if problem:
            raise fail(step, "config.cron", problem)
    if cfg.until_input_path is not None:
        problem = dot_path_problem(cfg.until_input_path)
        if problem:
            raise fail(step, "config.until_input_path", problem)
    if cfg.duration is not None and cfg.duration > MAX_SLEEP_NS:
        raise fail(
            step,
            "config.duration",
            f"must be <= 365 days (MAX_SLEEP), got {format_duration(cfg.duration)}",
        )
    if cfg.until is not None:
        until = cfg.until
        if until[:1].isdigit():
            if not is_rfc3339(until):
                raise fail(
                    step,
                    "config.until",
                    "must be an RFC 3339 timestamp with a time "
                    f"zone (e.g. '2030-01-01T09:00:00Z') or an input path, got {until!r}",
                )
        else:
            problem = input_path_problem(until, allow_run=True)
            if problem:
                raise fail(step, "config.until", problem)


def is_rfc3339(text: str) -> bool:
    if len(text) < 20 or text[10] not in "Tt ":
        return False
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def check_respond(step: StepDef, cfg: Any, fail: Fail) -> None:
    assert isinstance(cfg, RespondConfig)
    if cfg.body_from is not None and (problem := dot_path_problem(cfg.body_from)):
        raise fail(step, "config.body_from", problem)


def check_agent_loop(step: StepDef, cfg: Any, fail: Fail) -> None:
    assert isinstance(cfg, AgentLoopConfig)
    if cfg.max_duration is not None and cfg.max_duration <= 0:
        raise fail(step, "config.max_duration", "must be > 0")


ConfigCheck = Callable[[StepDef, Any, Fail], None]
CONFIG_CHECKS: dict[type, ConfigCheck] = {
    SleepConfig: check_sleep,
    ApprovalConfig: check_approval,
    RespondConfig: check_respond,
    AgentLoopConfig: check_agent_loop,
}
"""Per-type config rules beyond the model's own (the rules module dispatches on these)."""
