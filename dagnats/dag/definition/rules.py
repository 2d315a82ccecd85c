"""Load and validate workflow definitions: the rules a definition must keep.

:func:`load_definition` is the one entry point for definitions from users, files, KV or the
API. It turns every problem into a :class:`~dagnats.errors.DefinitionError` whose message
names the step, the field and the rule, never a pydantic traceback or a ``KeyError``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from dagnats.dag.definition._translate import translate_validation_error, validation_problems
from dagnats.dag.definition.conditions import (
    ConditionError,
    parse_condition,
    parse_path,
)
from dagnats.dag.definition.flow import check_step_flow, check_workflow_flow
from dagnats.dag.definition.formrules import (
    CONFIG_CHECKS,
    check_aux_steps,
    check_skip_object,
    dot_path_problem,
    go_match_problem,
    input_path_problem,
)
from dagnats.dag.definition.graph import topological_order
from dagnats.dag.definition.jsonschema import check_schema
from dagnats.dag.definition.models import (
    MAX_STEPS,
    TASK_STEP_TYPES,
    CancelOn,
    EventMatch,
    SkipIf,
    StepDef,
    SubWorkflowConfig,
    WaitForEventConfig,
    WorkflowDef,
)
from dagnats.errors import DefinitionError

# Steps a worker does not run: options that only steer workers make no sense on them.
_WORKER_ONLY_FIELDS = (
    "task",
    "worker_group",
    "rate_limit",
    "keyed_rate_limit",
    "max_task_concurrency",
)
# Steps that never fail in a way a retry could fix (they wait; they do not work).
_NO_RETRY_TYPES = frozenset({"sleep", "wait_for_event", "approval", "respond"})
# Steps whose own deadline is meaningless or lives in config.timeout instead.
_NO_TIMEOUT_TYPES = frozenset({"sleep", "wait_for_event", "approval", "respond"})
_REQUIRED_CONFIG_HINT = {
    "agent_loop": "set config.max_iterations",
    "sleep": "set one of config.duration, config.until, config.cron, config.until_input_path",
    "wait_for_event": "set config.event",
    "sub_workflow": "set config.workflow",
}


def load_definition(source: Mapping[str, Any] | str | bytes | WorkflowDef) -> WorkflowDef:
    """Parse (JSON text or bytes), validate and return a definition, or raise DefinitionError."""
    if isinstance(source, WorkflowDef):
        return validate_definition(source)
    source = _parsed(source)
    try:
        defn = WorkflowDef.model_validate(dict(source))
    except ValidationError as exc:
        raise translate_validation_error(exc, source) from exc
    return validate_definition(defn)


def definition_problems(source: Mapping[str, Any] | str | bytes) -> list[DefinitionError]:
    """Every problem of a definition (``[]``: it is valid), for ``dagnats workflow validate``.

    Shape errors (all of them) come first; only a definition whose shape is right has its
    rules checked, each rule on its own so one problem does not hide the next.
    """
    try:
        raw = _parsed(source)
    except DefinitionError as exc:
        return [exc]
    try:
        defn = WorkflowDef.model_validate(dict(raw))
    except ValidationError as exc:
        return validation_problems(exc, raw)
    found: list[DefinitionError] = []
    for check in _checks(defn):
        try:
            check()
        except DefinitionError as exc:
            found.append(exc)
            if check.func in (_check_steps_list, _check_dependencies):
                break  # the later rules assume ids and edges are sound
    return found


def _parsed(source: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DefinitionError(f"definition is not UTF-8 text: {exc}") from exc
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
        except RecursionError as exc:
            raise DefinitionError("invalid JSON: nested too deeply") from exc
    if not isinstance(source, Mapping):
        raise DefinitionError(
            f"a workflow definition must be a JSON object, got {type(source).__name__}"
        )
    return source


def validate_definition(defn: WorkflowDef) -> WorkflowDef:
    """Check the rules the models cannot see alone (graph, handlers, per-type config)."""
    for check in _checks(defn):
        check()
    if defn.aux_steps is not None:
        # Derived data (checked above): dropped so a definition is equal however written.
        defn = defn.model_copy(update={"aux_steps": None})
    return defn


def _checks(defn: WorkflowDef) -> list[functools.partial[Any]]:
    """The rules in the order they are checked (each raises a DefinitionError)."""
    out: list[functools.partial[Any]] = [
        functools.partial(_check_steps_list, defn),
        functools.partial(_check_workflow_fields, defn),
        functools.partial(check_workflow_flow, defn),
    ]
    out += [functools.partial(validate_step, step, defn.name) for step in defn.steps]
    out += [
        functools.partial(_check_dependencies, defn),
        functools.partial(_check_handlers, defn),
        functools.partial(topological_order, defn),  # raises on a cycle
    ]
    if defn.aux_steps is not None:
        out.append(functools.partial(check_aux_steps, defn, defn.aux_steps))
    return out


def _check_steps_list(defn: WorkflowDef) -> None:
    wf = f"workflow {defn.name!r}"
    if not defn.steps:
        raise DefinitionError(f"{wf}: field 'steps': needs at least one step", field="steps")
    if len(defn.steps) > MAX_STEPS:
        raise DefinitionError(
            f"{wf}: field 'steps': has {len(defn.steps)} steps; the limit is {MAX_STEPS} "
            "(MAX_STEPS)",
            field="steps",
        )
    seen: dict[str, int] = {}
    planners = [s.id for s in defn.steps if s.type == "planner"]
    maps = {s.id for s in defn.steps if s.type == "map"}
    for index, step in enumerate(defn.steps):
        head, _, last = step.id.rpartition(".")
        if head in maps and last.isdigit():
            raise DefinitionError(
                f"{wf}: step {step.id!r}: field 'id': reads as item {last} of map step "
                f"{head!r} (in its logs and output); choose another id",
                step_id=step.id,
                field="id",
            )
        owner = next((p for p in planners if step.id.startswith(f"{p}.")), None)
        if owner is not None:
            raise DefinitionError(
                f"{wf}: step {step.id!r}: field 'id': ids starting with {owner + '.'!r} "
                f"belong to the steps planner {owner!r} adds; choose another id",
                step_id=step.id,
                field="id",
            )
        if step.id in seen:
            raise DefinitionError(
                f"{wf}: duplicate step id {step.id!r} (steps at index {seen[step.id]} and "
                f"{index}); step ids must be unique",
                step_id=step.id,
                field="id",
            )
        seen[step.id] = index


def _fail(step: StepDef, field: str, rule: str) -> DefinitionError:
    return DefinitionError(
        f"step {step.id!r}: field {field!r}: {rule}", step_id=step.id, field=field
    )


def _check_workflow_fields(defn: WorkflowDef) -> None:
    wf = f"workflow {defn.name!r}"
    if defn.timeout is not None and defn.timeout <= 0:
        raise DefinitionError(f"{wf}: field 'timeout': must be > 0", field="timeout")
    if defn.idempotency_key is not None:
        problem = dot_path_problem(defn.idempotency_key)
        if problem:
            raise DefinitionError(
                f"{wf}: field 'idempotency_key': {problem}", field="idempotency_key"
            )
    if defn.input_schema is not None:
        try:
            check_schema(defn.input_schema)
        except DefinitionError as exc:
            raise DefinitionError(
                f"{wf}: field 'input_schema': {exc}", field="input_schema"
            ) from exc
    if defn.output_schema is not None:
        try:
            check_schema(defn.output_schema)
        except DefinitionError as exc:
            raise DefinitionError(
                f"{wf}: field 'output_schema': {exc}", field="output_schema"
            ) from exc
    for i, cancel in enumerate(defn.cancel_on):
        _check_cancel_on(defn, i, cancel)


def _check_cancel_on(defn: WorkflowDef, i: int, cancel: CancelOn) -> None:
    wf = f"workflow {defn.name!r}"
    field = f"cancel_on[{i}].match"
    if isinstance(cancel.match, EventMatch):
        found = go_match_problem(cancel.match, steps=None)
        if found:
            where, rule = found
            raise DefinitionError(f"{wf}: field '{field}.{where}': {rule}", field=field)
        return
    for key, value in cancel.match.items():
        problem = _check_match(key, value, allow_run=False)
        if problem:
            raise DefinitionError(f"{wf}: field {field!r}: {problem}", field=field)


def _check_match(key: str, value: str, *, allow_run: bool) -> str | None:
    try:
        parse_path(key)
    except ConditionError as exc:
        return f"event field {key!r}: {exc}"
    return input_path_problem(value, allow_run=allow_run)


def validate_step(step: StepDef, workflow_name: str) -> None:
    """The rules one step must satisfy on its own (options, per-type config, skip_if)."""
    _check_options(step)
    if isinstance(step.skip_if, SkipIf):
        check_skip_object(step, step.skip_if, _fail)
    elif step.skip_if is not None:
        if len(step.skip_if) > 1024:
            raise _fail(step, "skip_if", "must be at most 1024 characters long")
        try:
            parse_condition(step.skip_if)
        except ConditionError as exc:
            raise _fail(step, "skip_if", f"invalid condition: {exc}") from exc
    _check_config(step, workflow_name)
    check_step_flow(step, _fail)


def _check_options(step: StepDef) -> None:
    """The step options that only some step types take (worker options, retry, timeout)."""
    kind = step.type
    if kind not in TASK_STEP_TYPES:
        for name in _WORKER_ONLY_FIELDS:
            if getattr(step, name) is not None:
                raise _fail(
                    step,
                    name,
                    f"only worker steps (normal, agent, agent_loop, map, planner) take "
                    f"{name!r}; this step has type {kind!r}",
                )
    if kind not in TASK_STEP_TYPES and step.required_capabilities:
        raise _fail(
            step,
            "required_capabilities",
            f"only worker steps have a handler to give capabilities to; this step has "
            f"type {kind!r}",
        )
    if kind in _NO_RETRY_TYPES and step.retry is not None:
        raise _fail(step, "retry", f"a {kind!r} step is never retried; remove 'retry'")
    if kind in _NO_RETRY_TYPES and step.retries is not None:
        raise _fail(step, "retries", f"a {kind!r} step is never retried; remove 'retries'")
    if kind in _NO_TIMEOUT_TYPES and step.timeout is not None:
        where = "use 'config.timeout'" if kind in ("wait_for_event", "approval") else "remove it"
        raise _fail(step, "timeout", f"a {kind!r} step has no step timeout; {where}")
    if step.timeout is not None and step.timeout <= 0:
        raise _fail(step, "timeout", "must be > 0")
    if kind in TASK_STEP_TYPES and step.task is None and "." in step.id:
        # The task defaults to the id, but a task is one subject token: no dots.
        raise _fail(
            step,
            "task",
            "required when the step id contains '.' (a task name is letters, digits, '_' and '-')",
        )


def _check_config(step: StepDef, workflow_name: str) -> None:
    """The step's ``config``: present when its type needs one, and valid for that type."""
    kind = step.type
    cfg = step.config
    if kind in ("normal", "agent"):
        if cfg is not None:
            raise _fail(step, "config", f"a {kind!r} step takes no config; remove it or set 'type'")
        return
    if cfg is None:
        if kind in _REQUIRED_CONFIG_HINT:
            raise _fail(
                step, "config", f"required for type {kind!r} ({_REQUIRED_CONFIG_HINT[kind]})"
            )
    if kind == "map":
        _check_map(step)
    elif isinstance(cfg, SubWorkflowConfig):
        if cfg.workflow == workflow_name:
            raise _fail(step, "config.workflow", "a workflow cannot start itself as a sub-workflow")
    elif isinstance(cfg, WaitForEventConfig):
        _check_wait(step, cfg)
    elif cfg is not None and (check := CONFIG_CHECKS.get(type(cfg))) is not None:
        check(step, cfg, _fail)


def _check_map(step: StepDef) -> None:
    if len(step.depends_on) != 1:
        raise _fail(
            step,
            "depends_on",
            "a 'map' step needs exactly one dependency (the step "
            f"whose output list it maps over), got {len(step.depends_on)}",
        )


def _check_wait(step: StepDef, cfg: WaitForEventConfig) -> None:
    if cfg.timeout is not None and cfg.timeout <= 0:
        raise _fail(step, "config.timeout", "must be > 0")
    if isinstance(cfg.match, EventMatch):
        found = go_match_problem(cfg.match, steps=set(step.depends_on))
        if found:
            where, rule = found
            raise _fail(step, f"config.match.{where}", rule)
        return
    for key, value in cfg.match.items():
        problem = _check_match(key, value, allow_run=True)
        if problem:
            raise _fail(step, "config.match", problem)


def _check_dependencies(defn: WorkflowDef) -> None:
    ids = {s.id for s in defn.steps}
    for step in defn.steps:
        listed: set[str] = set()
        for dep in step.depends_on:
            if dep == step.id:
                raise _fail(step, "depends_on", "a step cannot depend on itself")
            if dep not in ids:
                raise _fail(step, "depends_on", f"unknown step {dep!r}")
            if dep in listed:
                raise _fail(step, "depends_on", f"{dep!r} is listed more than once")
            listed.add(dep)


def _check_handlers(defn: WorkflowDef) -> None:
    by_id = {s.id: s for s in defn.steps}
    depended_on = {dep for s in defn.steps for dep in s.depends_on}
    for step in defn.steps:
        for field in ("on_failure", "compensate"):
            target_id: str | None = getattr(step, field)
            if target_id is None:
                continue
            if target_id == step.id:
                raise _fail(step, field, "a step cannot be its own handler")
            target = by_id.get(target_id)
            if target is None:
                raise _fail(step, field, f"unknown step {target_id!r}")
            problem = _handler_problem(target, depended_on)
            if problem:
                raise _fail(step, field, f"handler step {target_id!r} must {problem}")


def _handler_problem(target: StepDef, depended_on: set[str]) -> str | None:
    # A handler is started only by the engine when its owner fails or must be compensated,
    # so it must not also be wired into the normal flow.
    if target.type != "normal":
        return f"be a 'normal' step, not {target.type!r}"
    if target.depends_on:
        return "have no dependencies (it starts only when its owner fails or is compensated)"
    if target.id in depended_on:
        return "not be a dependency of any step (handlers never run in the normal flow)"
    if target.on_failure is not None or target.compensate is not None:
        return "not have its own on_failure/compensate (handlers do not chain)"
    return None
