"""The records the engine writes outside ``advance()`` (signals, engine failures, approval
requests, planner fragments); re-exported by :mod:`dagnats.protocol.events`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dagnats.protocol.event_types import (
    SIGNAL_RECEIVED,
    STEP_APPROVAL_REQUESTED,
    WORKFLOW_FAILED,
    Event,
    Stamped,
)
from dagnats.protocol.names import name_token

# --- records written outside advance() ----------------------------------------------------


def signal_received(run_id: str, name: str, data: Any, revision: int) -> Stamped:
    """Signal ``name`` was stored at KV ``revision``: ``signal.<run>.<name>.<revision>``."""
    event = Event(type=SIGNAL_RECEIVED, run_id=run_id, data={"name": name, "data": data})
    return event, f"signal.{run_id}.{name}.{revision}"


def engine_failed(run_id: str, message: str) -> Stamped:
    """The engine failed the run itself (an event it could not apply): ``<run>.failed.engine``."""
    data = {"error": {"message": message, "type": "EngineError"}}
    return Event(type=WORKFLOW_FAILED, run_id=run_id, data=data), f"{run_id}.failed.engine"


def approval_request(
    run_id: str,
    step_id: str,
    token: str,
    expires_at: datetime,
    *,
    subject: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Go's approval request body, as published on the step's ``subject`` (and recorded)."""
    return {
        "token": token,
        "run_id": run_id,
        "step_id": step_id,
        "subject": subject,
        "description": description,
        "metadata": metadata or {},
        "expires_at": expires_at.isoformat(),
    }


def approval_requested(
    run_id: str,
    step_id: str,
    token: str,
    expires_at: datetime,
    message: str | None,
    request: dict[str, Any] | None = None,
) -> Stamped:
    """``<run>.<step>.approval.<deadline as float seconds>``: one per approval request.

    ``request`` (Go's request fields: subject, description, metadata) is recorded beside.
    """
    data = {"token": token, "expires_at": expires_at.isoformat(), "message": message}
    if request is not None:
        data.update({k: request[k] for k in ("subject", "description", "metadata")})
    event = Event(type=STEP_APPROVAL_REQUESTED, run_id=run_id, step_id=step_id, data=data)
    return event, f"{run_id}.{name_token(step_id)}.approval.{expires_at.timestamp()}"


def planner_materialized_data(planner_id: str, step_ids: list[str], total: int) -> dict[str, Any]:
    """The data of a ``planner.materialized`` record: what a planner's fragment added.

    ``steps`` are the new (prefixed) step ids in fragment order; ``dynamic_steps`` is how many
    steps planners have added to the run so far, this fragment included.
    """
    return {"planner": planner_id, "steps": list(step_ids), "dynamic_steps": total}
