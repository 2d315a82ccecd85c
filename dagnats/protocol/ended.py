"""The terminal announcement on ``dagnats.done.<run_id>``: what a waiter needs, not the run.

The engine announces a run's end twice (ADR 0013):

- with the result, ``{run_id, status, output | error, failed_step}``, in the same flush as
  the final history record and the terminal snapshot's write, so a waiter that subscribed
  before (``Client.start`` subscribes before it starts the run) has the result one hop
  after the last step, without reading the snapshot or validating a whole ``RunState``;
- once the snapshot is stored, ``{run_id, status, snapshot: true}``: a waiter that
  subscribed after the first one and read no terminal snapshot learns that it can now.

A result too large for one message (over :data:`ENDED_INLINE_MAX`) is not sent the first
time: the second message then tells to read the snapshot. Readers accept the older form too
(the whole snapshot, or its object-store marker), which ``parse_ended`` maps onto the same
fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ENDED_INLINE_MAX = 256 * 1024  # well under NATS's 1 MiB max_payload
SNAPSHOT_REF = "$dagnats_snapshot"  # a KV snapshot kept in the object store (too large)


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A parsed announcement."""

    run_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    """``{"message", "step_id", "type"}`` of a run that did not complete."""
    failed_step: str | None = None
    snapshot: bool = False
    """The result is not in the message: read the stored (terminal) snapshot."""


def ended_body(
    run_id: str,
    status: str,
    *,
    output: Any = None,
    error: dict[str, Any] | None = None,
    failed_step: str | None = None,
) -> bytes | None:
    """The announcement carrying the result; ``None`` when it would be too large."""
    body: dict[str, Any] = {"run_id": run_id, "status": status}
    if output is not None:
        body["output"] = output
    if error is not None:
        body["error"] = error
    if failed_step is not None:
        body["failed_step"] = failed_step
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    return data if len(data) <= ENDED_INLINE_MAX else None


def stored_body(run_id: str, status: str) -> bytes:
    """The announcement that the terminal snapshot is stored (read it for the result)."""
    return json.dumps({"run_id": run_id, "status": status, "snapshot": True}).encode()


def parse_ended(data: bytes, run_id: str) -> RunEnded:
    """An announcement in any form (``ValueError`` when it is not one)."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"run {run_id}: unreadable terminal announcement") from exc
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise ValueError(f"run {run_id}: a terminal announcement without a status")
    error = body.get("error")
    failed = body.get("failed_step")
    return RunEnded(
        run_id=str(body.get("run_id") or run_id),
        status=body["status"],
        output=body.get("output"),
        error=error if isinstance(error, dict) else None,
        failed_step=failed if isinstance(failed, str) else None,
        snapshot=bool(body.get("snapshot")) or SNAPSHOT_REF in body,
    )
