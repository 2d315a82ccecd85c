"""Would the steps after an approval accept the approver's data? Told before approving.

An approval step's output is the data given with ``approve``; the steps that depend on it
get that output as their input (``{dep_id: output}`` with several dependencies). When such
a step's task has a typed input (the worker directory shows each task's input schema) or
is a sub-workflow whose workflow has an ``input_schema``, data it would refuse (no data at
all, typically) fails the run later, after the single-use token is spent. ``dagnats
approve`` checks first and says which step needs what.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagnats import protocol
from dagnats._nats import overview
from dagnats._nats.kvscan import get_entry
from dagnats.dag.definition.jsonschema import validate_instance
from dagnats.dag.definition.models import TASK_STEP_TYPES, StepDef, SubWorkflowConfig
from dagnats.dag.definition.rules import load_definition
from dagnats.errors import NotFoundError
from dagnats.protocol.messages import ApprovalRecord

if TYPE_CHECKING:
    from dagnats.client.client import Client

TOKEN = re.compile(r"[0-9a-f]{64}")  # what the engine mints (secrets.token_hex(32))


async def approval_problems(client: Client, token: str, data: Any) -> list[str]:
    """Why a step after the approval of ``token`` would refuse ``data`` as its input.

    ``[]`` when none would, and whenever it cannot be told (an unknown or used token, a run
    that ended, no live worker showing the task's schema): ``approve`` itself then answers.
    """
    kv = await client.kv(protocol.KV_APPROVALS)
    # Only a well-formed token is looked up; the API answers any other with its own error.
    entry = await get_entry(kv, token) if TOKEN.fullmatch(token) else None
    if entry is None or not entry.value:
        return []
    record = ApprovalRecord.model_validate_json(entry.value)
    if record.state != "open":
        return []
    try:
        state = await client.get_run(record.run_id)
        if state.terminal:
            return []
        found = await client.get_workflow(state.workflow, state.revision)
    except NotFoundError:
        return []
    after = [
        s for s in load_definition(found["definition"]).steps if record.step_id in s.depends_on
    ]
    if not after:
        return []
    inputs = _task_inputs(await overview.read_workers(client.js) or [])
    problems: list[str] = []
    for step in after:
        schema, what = await _input_schema(client, step, inputs)
        if schema is None:
            continue
        part = _part_for(schema, step, record.step_id)
        if part is None:
            continue
        where = "its input" if len(step.depends_on) == 1 else f"its input's '{record.step_id}'"
        for found_problem in validate_instance(part, data, path="data")[:3]:
            # the validator writes Python's repr; the user typed JSON
            problem = found_problem.replace("data: None is", "data: null is", 1)
            problems.append(
                f"step '{step.id}' ({what}) gets the approval's data as {where}: {problem}"
                + _needs(part)
            )
    return problems


def _task_inputs(workers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Input schemas by task, from the live workers' entries (a task any worker serves
    without showing one is left out: it may accept anything)."""
    shown: dict[str, dict[str, Any]] = {}
    open_: set[str] = set()
    for w in workers:
        shown_by_w = w.get("inputs")
        inputs: dict[str, Any] = shown_by_w if isinstance(shown_by_w, dict) else {}
        for task in w.get("tasks") or []:
            schema = inputs.get(task)
            if isinstance(schema, dict):
                shown.setdefault(str(task), schema)
            else:
                open_.add(str(task))
    return {t: s for t, s in shown.items() if t not in open_}


async def _input_schema(
    client: Client, step: StepDef, inputs: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, str]:
    if step.type in TASK_STEP_TYPES and step.type != "map":
        task = step.task or step.id
        return inputs.get(task), f"task '{task}'"
    if step.type == "sub_workflow" and isinstance(step.config, SubWorkflowConfig):
        child = step.config.workflow
        try:
            found = await client.get_workflow(child, step.config.revision)
        except NotFoundError:
            return None, ""
        schema = found["definition"].get("input_schema")
        return (schema if isinstance(schema, dict) else None), f"workflow '{child}'"
    return None, ""


def _part_for(schema: dict[str, Any], step: StepDef, approval_id: str) -> dict[str, Any] | None:
    """The part of ``schema`` the approval's data must satisfy: all of it with one
    dependency, else the property named after the approval step (``None``: unconstrained)."""
    if len(step.depends_on) == 1:
        return schema
    props = schema.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get(approval_id), dict):
        return None
    part = dict(props[approval_id])
    if "$defs" in schema:  # pydantic's "$ref": "#/$defs/..." resolves against the root
        part["$defs"] = schema["$defs"]
    return part


def _needs(schema: dict[str, Any]) -> str:
    """``; it needs an object with approver, ticket`` when the schema says so."""
    target = schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = (schema.get("$defs") or {}).get(ref.removeprefix("#/$defs/"), {})
    required = target.get("required") if isinstance(target, dict) else None
    if isinstance(required, list) and required:
        fields = ", ".join(str(r) for r in required[:8])
        example = json.dumps({str(r): "..." for r in required[:3]})
        return f"; it needs an object with {fields}, e.g. '{example}'"
    kind = target.get("type") if isinstance(target, dict) else None
    return f"; it needs a JSON {kind}" if isinstance(kind, str) else ""
