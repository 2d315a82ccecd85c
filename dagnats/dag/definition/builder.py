"""The Python builder: ``Workflow("name").step(...)`` compiles to a :class:`WorkflowDef`.

Durations given here are Python's (:data:`~dagnats.protocol.durations.DurationLike`: a
number is seconds), so options are validated under ``PYTHON_CONTEXT``; ``from_dict`` and
``from_json`` load data, where an integer duration is nanoseconds.

Each call validates what it can see at once (the step's own options, a duplicate id, an
unknown dependency), so a mistake points at the line that made it; whole-graph rules
(handlers, cycles) are checked by :meth:`Workflow.to_definition`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Unpack

from pydantic import BaseModel, ValidationError

from dagnats.dag.definition._translate import translate_validation_error
from dagnats.dag.definition.goform import to_go_dict
from dagnats.dag.definition.models import (
    CancelOn,
    Concurrency,
    KeyedRateLimit,
    Priority,
    RateLimit,
    RetryPolicy,
    Singleton,
    SkipIf,
    StepDef,
    WorkflowDef,
)
from dagnats.dag.definition.rules import load_definition, validate_definition, validate_step
from dagnats.dag.definition.step_options import (
    DefinitionFormat,
    StepLike,
    StepOptions,
    StepRef,
    WaitOptions,
    _task_of,
    _wait_options,
    check_deps_known,
    check_edge_types,
    check_new_id,
    new_step,
    step_refs,
)
from dagnats.protocol.durations import PYTHON_CONTEXT, DurationLike


class Workflow:
    """Build a workflow definition in Python; see docs/workflows.md."""

    def __init__(
        self,
        name: str,
        version: str = "1.0",
        *,
        description: str | None = None,
        default_retry: RetryPolicy | Mapping[str, Any] | None = None,
        timeout: DurationLike | None = None,
        concurrency: Concurrency | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        input_schema: Mapping[str, Any] | type[BaseModel] | None = None,
        cancel_on: Sequence[CancelOn | Mapping[str, Any]] | None = None,
        priority: Priority | Mapping[str, Any] | None = None,
        sticky: Literal["", "soft", "hard"] = "",
        singleton: Singleton | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        retention: DurationLike | None = None,
    ) -> None:
        if isinstance(input_schema, type) and issubclass(input_schema, BaseModel):
            input_schema = input_schema.model_json_schema()
        raw: dict[str, Any] = {
            "name": name,
            "version": version,
            "description": description,
            "default_retry": default_retry,
            "timeout": timeout,
            "concurrency": concurrency,
            "idempotency_key": idempotency_key,
            "input_schema": dict(input_schema) if input_schema is not None else None,
            "cancel_on": list(cancel_on or ()),
            "priority": priority,
            "sticky": sticky,
            "singleton": singleton,
            "retention": retention,
            "metadata": dict(metadata or {}),
            "steps": [],
        }
        # Only what the caller set is passed, so to_dict() (exclude_unset) stays minimal.
        given = {k: v for k, v in raw.items() if v is not None and v != {} and v != []}
        given.update(name=name, version=version, steps=[])
        if given.get("sticky") == "":
            del given["sticky"]
        try:
            base = WorkflowDef.model_validate(given, context=PYTHON_CONTEXT)
        except ValidationError as exc:
            raise translate_validation_error(exc, raw) from exc
        self._init(base, [])

    def _init(self, base: WorkflowDef, steps: list[StepDef]) -> None:
        self._base = base.model_copy(update={"steps": []})
        self._steps = steps
        self._ids = {s.id for s in steps}
        self._types: dict[str, tuple[Any, Any]] = {}

    # --- introspection ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._base.name

    @property
    def version(self) -> str:
        return self._base.version

    @property
    def steps(self) -> tuple[str, ...]:
        """Step ids in the order they were added."""
        return tuple(s.id for s in self._steps)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, version={self.version!r}, steps={list(self.steps)!r})"

    # --- steps --------------------------------------------------------------------------

    def _add(
        self,
        id_or_task: Any,
        step_type: str,
        config: dict[str, Any] | None,
        task: Any = None,
        options: StepOptions | None = None,
    ) -> StepRef:
        step_id, in_t, out_t = _task_of(id_or_task)
        task_name: str | None = None
        if task is not None:
            task_name, task_in, task_out = _task_of(task)
            in_t, out_t = in_t or task_in, out_t or task_out
        # A decorated task as id_or_task: the step id is its task name, so task stays None.
        opts, deps = step_refs(options)
        check_new_id(self.name, step_id, self._ids)
        step = new_step(self.name, self._steps, step_id, step_type, config, task_name, opts, deps)
        validate_step(step, self.name)
        check_deps_known(step_id, deps, self._ids)
        if step_type in ("normal", "agent_loop"):
            check_edge_types(step_id, deps, in_t, self._types)
        self._steps.append(step)
        self._ids.add(step_id)
        self._types[step_id] = (in_t, out_t)
        return StepRef(step_id, out_t)

    def step(
        self,
        id_or_task: Any,
        *,
        task: Any = None,
        depends_on: Iterable[StepLike] = (),
        timeout: DurationLike | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        skip_if: str | SkipIf | Mapping[str, Any] | None = None,
        on_failure: StepLike | None = None,
        compensate: StepLike | None = None,
        worker_group: str | None = None,
        rate_limit: RateLimit | Mapping[str, Any] | None = None,
        max_task_concurrency: int | None = None,
        keyed_rate_limit: KeyedRateLimit | Mapping[str, Any] | None = None,
        required_capabilities: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StepRef:
        """Add a normal (worker) step; ``id_or_task`` is an id or a decorated task."""
        options: StepOptions = {
            "depends_on": depends_on,
            "timeout": timeout,
            "retry": retry,
            "skip_if": skip_if,
            "on_failure": on_failure,
            "compensate": compensate,
            "worker_group": worker_group,
            "rate_limit": rate_limit,
            "max_task_concurrency": max_task_concurrency,
            "keyed_rate_limit": keyed_rate_limit,
            "required_capabilities": required_capabilities,
            "metadata": metadata,
        }
        return self._add(id_or_task, "normal", None, task, options)

    def agent(
        self, id: Any, *, task: Any = None, role: str | None = None, **common: Unpack[StepOptions]
    ) -> StepRef:
        """A normal step run by an agent; ``role`` is stored as ``metadata.role``."""
        if role is not None:
            common["metadata"] = {**dict(common.get("metadata") or {}), "role": role}
        return self._add(id, "agent", None, task, common)

    def planner(
        self,
        id: Any,
        *,
        task: Any = None,
        max_steps: int | None = None,
        max_depth: int | None = None,
        allowed_tasks: Sequence[str] | None = None,
        **common: Unpack[StepOptions],
    ) -> StepRef:
        """A step whose handler returns ``{"steps": [...]}``: a fragment that joins the run."""
        config = {
            "max_steps": max_steps,
            "max_depth": max_depth,
            "allowed_tasks": list(allowed_tasks) if allowed_tasks is not None else None,
        }
        return self._add(id, "planner", config, task, common)

    def agent_loop(
        self,
        id: Any,
        *,
        task: Any = None,
        max_iterations: int,
        max_duration: DurationLike | None = None,
        loop_delay: DurationLike | None = None,
        budget_warn_at: int | None = None,
        budget_force_at: int | None = None,
        **common: Unpack[StepOptions],
    ) -> StepRef:
        """A step whose handler runs again while it returns ``Continue`` (bounded)."""
        config = {
            "max_iterations": max_iterations,
            "max_duration": max_duration,
            "loop_delay": loop_delay,
            "budget_warn_at": budget_warn_at,
            "budget_force_at": budget_force_at,
        }
        return self._add(id, "agent_loop", config, task, common)

    def map(
        self,
        id: Any,
        *,
        task: Any = None,
        max_items: int = 1000,
        concurrency: int | None = None,
        **common: Unpack[StepOptions],
    ) -> StepRef:
        """Run the task once per item of the (single) dependency's output list."""
        config = {"max_items": max_items, "concurrency": concurrency}
        return self._add(id, "map", config, task, common)

    def sleep(
        self,
        id: str,
        *,
        duration: DurationLike | None = None,
        until: str | None = None,
        cron: str | None = None,
        until_input_path: str | None = None,
        **common: Unpack[WaitOptions],
    ) -> StepRef:
        """Wait durably for ``duration``, ``until`` a timestamp (or an input path), to the
        next match of a 5-field ``cron`` expression (UTC), or to the instant at
        ``until_input_path`` in the run input (RFC 3339 or epoch ms). Exactly one."""
        config = {
            "duration": duration,
            "until": until,
            "cron": cron,
            "until_input_path": until_input_path,
        }
        return self._add(id, "sleep", config, None, _wait_options(common))

    def wait_for_event(
        self,
        id: str,
        *,
        event: str,
        match: Mapping[str, str] | None = None,
        timeout: DurationLike | None = None,
        lookback: DurationLike | None = None,
        **common: Unpack[WaitOptions],
    ) -> StepRef:
        """Wait for an external event whose fields equal the given input paths."""
        config = {
            "event": event,
            "match": dict(match) if match is not None else None,
            "timeout": timeout,
            "lookback": lookback,
        }
        return self._add(id, "wait_for_event", config, None, _wait_options(common))

    def sub_workflow(
        self,
        id: str,
        *,
        workflow: str,
        revision: int | None = None,
        detach: bool = False,
        **common: Unpack[StepOptions],
    ) -> StepRef:
        """Start another registered workflow with this step's input; its result is the output."""
        config = {"workflow": workflow, "revision": revision, "detach": detach}
        return self._add(id, "sub_workflow", config, None, common)

    def approval(
        self,
        id: str,
        *,
        timeout: DurationLike = "24h",
        message: str | None = None,
        subject: str | None = None,
        description: str | None = None,
        request_metadata: Mapping[str, Any] | None = None,
        **common: Unpack[WaitOptions],
    ) -> StepRef:
        """Pause until a person approves or rejects with a single-use token.

        With ``subject`` the request (token, description, ``request_metadata``...) is also
        published on that core NATS subject. A rejection or an expiry fails the step
        (``on_failure`` / ``compensate`` apply).
        """
        config = {
            "timeout": timeout,
            "message": message,
            "subject": subject,
            "description": description,
            "metadata": dict(request_metadata) if request_metadata is not None else None,
        }
        return self._add(id, "approval", config, None, _wait_options(common))

    def respond(
        self,
        id: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body_from: str | None = None,
        content_type: str | None = None,
        depends_on: Iterable[StepLike] = (),
    ) -> StepRef:
        """Answer the HTTP request that started the run (an HTTP trigger) with this step's
        input (narrowed by ``body_from``), ``status``, ``headers`` and ``content_type``
        (``application/json`` by default); the run goes on."""
        given = {
            "headers": dict(headers) if headers else None,
            "body_from": body_from,
            "content_type": content_type,
        }
        config = {"status": status} | {k: v for k, v in given.items() if v}
        return self._add(id, "respond", config, None, {"depends_on": depends_on})

    # --- output and input ---------------------------------------------------------------

    def to_definition(self) -> WorkflowDef:
        """The validated definition (raises DefinitionError naming the step and rule)."""
        return validate_definition(self._base.model_copy(update={"steps": list(self._steps)}))

    def to_dict(self, format: DefinitionFormat = "dagnats") -> dict[str, Any]:
        """A JSON-ready dict of the definition; ``from_dict`` of it gives an equal one.

        ``"dagnats"``: the fields that were set (plus ``version``), durations as strings;
        ``exclude_unset`` keeps what the author wrote (a loaded file keeps its explicit
        ``"depends_on": []``) and leaves out everything else, so the output is minimal.
        ``"go"``: the Go DagNats form (integer nanoseconds, every field Go always writes),
        for files that load in Go (see :mod:`dagnats.dag.definition.goform`).
        """
        defn = self.to_definition()
        if format == "go":
            return to_go_dict(defn)
        if format != "dagnats":
            raise ValueError(f"format must be 'dagnats' or 'go', got {format!r}")
        short = defn.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
        # "version" is kept even at its default: Go-format files always carry it.
        return {k: short.get(k, defn.version) for k in _TOP_KEYS if k in short or k == "version"}

    def to_json(self, indent: int | None = 2, format: DefinitionFormat = "dagnats") -> str:
        return json.dumps(self.to_dict(format), indent=indent, ensure_ascii=False)

    @classmethod
    def from_definition(cls, defn: WorkflowDef) -> Workflow:
        defn = validate_definition(defn)
        wf = cls.__new__(cls)
        wf._init(defn, list(defn.steps))
        return wf

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        return cls.from_definition(load_definition(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> Workflow:
        return cls.from_definition(load_definition(text))


# Top-level keys in the order the model declares them ("$schema" and "name" first).
_TOP_KEYS: tuple[str, ...] = tuple(f.alias or n for n, f in WorkflowDef.model_fields.items())


__all__ = ["DefinitionFormat", "StepLike", "StepOptions", "StepRef", "WaitOptions", "Workflow"]
