"""What the client's requests carry: the records it returns for workflows and runs and the
forms a definition may be given in (the service's errors are decoded by
``dagnats._nats.api.raise_service_error``, shared with the worker's control plane).

Kept apart from :mod:`dagnats.client.client` so that module stays about the requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnats.dag.definition.models import WorkflowDef
from dagnats.errors import (
    DefinitionError,
)
from dagnats.telemetry import tracing


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
