"""What the client's requests carry: the records it returns for workflows and runs, the
forms a definition may be given in, and the service's errors decoded back into exceptions.

Kept apart from :mod:`dagnats.client.client` so that module stays about the requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnats.dag.definition.models import WorkflowDef
from dagnats.errors import (
    ApiError,
    ApprovalError,
    DagnatsError,
    DefinitionError,
    InputValidationError,
    NotFoundError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from dagnats.telemetry import tracing

_ERRORS: dict[str, type[DagnatsError]] = {
    cls.__name__: cls
    for cls in (
        DefinitionError,
        InputValidationError,
        NotFoundError,
        WorkflowNotFoundError,
        RunNotFoundError,
        ApprovalError,
    )
}


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    workflow: str
    status: str
    created_at: str | None = None
    finished_at: str | None = None
    run_at: str | None = None
    """For a scheduled run: when it starts."""


@dataclass(frozen=True)
class WorkflowInfo:
    name: str
    version: str
    revision: int
    steps: int = 0
    description: str | None = None


def definition_payload(workflow: Any) -> Any:
    """Accept a builder, a model, a dict, JSON text or a path to a .json file."""
    if hasattr(workflow, "to_dict") and callable(workflow.to_dict):
        return workflow.to_dict()
    if isinstance(workflow, WorkflowDef):
        return workflow.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(workflow, Path) or (
        isinstance(workflow, str) and workflow.endswith(".json") and "{" not in workflow
    ):
        try:
            return Path(workflow).read_text()
        except OSError as exc:
            raise DefinitionError(f"cannot read workflow file {workflow}: {exc}") from exc
    return workflow


def span_attributes(body: dict[str, Any]) -> dict[str, Any]:
    workflow, run_id = body.get("workflow"), body.get("run_id")
    return {
        tracing.WORKFLOW: workflow if isinstance(workflow, str) else None,
        tracing.RUN_ID: run_id if isinstance(run_id, str) else None,
    }


def raise_service_error(hdrs: Mapping[str, str], data: bytes) -> None:
    """Raise the dagnats exception an error reply names (nothing for a good reply)."""
    if "Nats-Service-Error-Code" in hdrs:
        try:
            err = json.loads(data)["error"]
            kind, message = err["kind"], err["message"]
        except (ValueError, KeyError, TypeError):
            kind, message = "ApiError", hdrs.get("Nats-Service-Error", "API error")
        cls = _ERRORS.get(kind)
        if cls is not None:
            raise cls(message)
        raise ApiError(message, code=int(hdrs.get("Nats-Service-Error-Code", "500")))
