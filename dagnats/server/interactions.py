"""API operations on a run from the outside world: signals, events, approval decisions.

A collaborator of :class:`dagnats.server.operations.Operations`, which builds one and opens
it with its own buckets.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import get_entry
from dagnats._nats.publish import append_event
from dagnats._nats.signals import send_signal
from dagnats._nats.types import (
    JetStreamContext,
    KeyValue,
)
from dagnats.errors import ApiError, ApprovalError
from dagnats.protocol import clock
from dagnats.protocol import events as ev
from dagnats.protocol.limits import check_dotted_name, check_name, check_workflow_name
from dagnats.protocol.messages import ApprovalRecord


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ApiError(f"field '{field}' is required (a non-empty string)", code=400)
    return value


def _name(body: dict[str, Any], field: str = "name") -> str:
    """A required name field: it becomes a subject token or KV key, so it is checked."""
    return check_name(_text(body, field), f"field '{field}'")


def _workflow(body: dict[str, Any], field: str = "workflow") -> str:
    """A required workflow name field (dots allowed: keys spell it with ``name_token``)."""
    return check_workflow_name(_text(body, field), f"workflow name in field '{field}'")


def _run_id(body: dict[str, Any]) -> str:
    return _name(body, "run_id")


class Interactions:
    """Signals, external events and approval decisions; ``await open()`` before use."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._approvals: KeyValue | None = None
        self._signals: KeyValue | None = None

    async def open(self) -> None:
        self._approvals = await self.js.key_value(protocol.KV_APPROVALS)
        self._signals = await self.js.key_value(protocol.KV_SIGNALS)

    @property
    def approvals(self) -> KeyValue:
        if self._approvals is None:
            raise RuntimeError("Interactions.open() was not awaited")
        return self._approvals

    @property
    def signals(self) -> KeyValue:
        if self._signals is None:
            raise RuntimeError("Interactions.open() was not awaited")
        return self._signals

    async def signal_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id, name = _run_id(body), _name(body)
        await send_signal(self.js, run_id, name, body.get("data"), kv=self.signals)
        return {"run_id": run_id, "signal": name}

    async def publish_event(self, body: dict[str, Any]) -> dict[str, Any]:
        name = check_dotted_name(_text(body, "name"), "event name")
        ack = await self.js.publish(
            protocol.event_subject(name), json.dumps(body.get("data")).encode()
        )
        return {"name": name, "seq": ack.seq}

    async def _consume_token(self, token: str, decision: dict[str, Any]) -> ApprovalRecord:
        """Mark the token used with ``decision`` (exactly once), and return its record.

        The decision is stored in the used record, so a retry of the same decision (say its
        event publish failed after the token was consumed) is answered again, and the caller
        publishes the event again (deduplicated); a different decision is refused.
        """
        if not re.match(r"^[0-9a-f]{64}$", token):
            raise ApprovalError("invalid approval token")
        entry = await get_entry(self.approvals, token)
        if entry is None or entry.value is None:
            raise ApprovalError("approval token unknown or expired")
        info = ApprovalRecord.model_validate_json(entry.value)
        if info.state == "used":
            if _same_decision(info, decision):
                return info
            raise ApprovalError("approval token already used")
        if info.state != "open":
            raise ApprovalError(f"approval token already used ({info.state})")
        if info.expires_at <= clock.now():
            raise ApprovalError("approval token expired")
        used = info.decided(decision)
        # Exactly once: only one CAS on this revision can win.
        if await cas.write(self.approvals, token, used.encode(), entry.revision or 0) is None:
            # Another request won; it may have been this same decision (a retry).
            now = await get_entry(self.approvals, token)
            if now is not None and now.value:
                current = ApprovalRecord.model_validate_json(now.value)
                if current.state == "used" and _same_decision(current, decision):
                    return current
            raise ApprovalError("approval token already used")
        return info

    async def approve(self, body: dict[str, Any]) -> dict[str, Any]:
        token = _text(body, "token")
        data = body.get("data")
        info = await self._consume_token(token, {"decision": "approved", "data": data})
        await append_event(self.js, *ev.step_approved(token, info.run_id, info.step_id, data))
        return {"run_id": info.run_id, "step_id": info.step_id, "approved": True}

    async def reject(self, body: dict[str, Any]) -> dict[str, Any]:
        token = _text(body, "token")
        reason = body.get("reason") or "rejected"
        info = await self._consume_token(token, {"decision": "rejected", "reason": reason})
        await append_event(self.js, *ev.step_rejected(token, info.run_id, info.step_id, reason))
        return {"run_id": info.run_id, "step_id": info.step_id, "approved": False}


def _same_decision(record: ApprovalRecord, decision: dict[str, Any]) -> bool:
    """The used record holds this decision with the same payload."""
    return all(_same_value(getattr(record, k, None), v) for k, v in decision.items())


def _same_value(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
