"""What a run's waiting steps wait for: an approval's token and message, a wake-up time.

The snapshot says *that* a step waits (``StepState.waiting``); the details are in the
history (``step.approval.requested`` carries the token, ``step.sleep.started`` the wake
time, ``step.retrying`` the delay). ``run status`` and its ``--json`` read them
here, and only for a run that has such a step, so most status calls read no history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dagnats.dag.machine.inputs import parse_timestamp
from dagnats.dag.machine.state import RunState
from dagnats.protocol import events as ev
from dagnats.protocol.events import Event

if TYPE_CHECKING:
    from dagnats.client.client import Client

# Waits whose details are in the history.
DETAILED_WAITS = frozenset({"approval", "sleep", "retry"})
REQUEST_FIELDS = ("subject", "description", "metadata")


@dataclass(frozen=True)
class PendingApproval:
    """An approval step waiting for a decision: ``dagnats approve TOKEN`` decides it."""

    step_id: str
    token: str
    message: str | None = None
    expires_at: datetime | None = None
    request: dict[str, Any] = field(default_factory=dict)
    """Go's request fields (``subject``, ``description``, ``metadata``) when it was asked
    with them."""


@dataclass(frozen=True)
class Wakeup:
    """A step asleep until ``at``: a ``sleep`` step, or a retry's backoff."""

    step_id: str
    at: datetime
    reason: str
    """``sleep`` or ``retry``."""


@dataclass
class RunWaits:
    """The approvals and wake-ups of one run's waiting steps, in step order."""

    approvals: list[PendingApproval] = field(default_factory=list)
    wakeups: list[Wakeup] = field(default_factory=list)


def has_detailed_waits(state: RunState) -> bool:
    """Whether a step waits on something whose details only the history holds."""
    return not state.terminal and any(s.waiting in DETAILED_WAITS for s in state.steps.values())


def _when(value: Any) -> datetime | None:
    return parse_timestamp(value) if isinstance(value, str) else None


def run_waits(state: RunState, history: Iterable[Event]) -> RunWaits:
    """The waits of ``state``'s steps that are still waiting, from its history."""
    requested: dict[str, PendingApproval] = {}
    wakes: dict[str, Wakeup] = {}
    for e in history:
        sid, data = e.step_id, e.data if isinstance(e.data, dict) else {}
        if sid is None:
            continue
        if e.type == ev.STEP_APPROVAL_REQUESTED and isinstance(data.get("token"), str):
            message = data.get("message")
            requested[sid] = PendingApproval(
                sid,
                data["token"],
                message if isinstance(message, str) else None,
                _when(data.get("expires_at")),
                {k: data[k] for k in REQUEST_FIELDS if k in data},
            )
        elif e.type == ev.STEP_SLEEP_STARTED and (until := _when(data.get("until"))):
            wakes[sid] = Wakeup(sid, until, "sleep")
        elif e.type == ev.STEP_RETRYING and isinstance(data.get("delay_ns"), int):
            at = e.ts + timedelta(microseconds=data["delay_ns"] // 1000)
            wakes[sid] = Wakeup(sid, at, "retry")
    out = RunWaits()
    for sid, s in state.steps.items():
        if s.waiting == "approval" and sid in requested:
            out.approvals.append(requested[sid])
        elif s.waiting in ("sleep", "retry") and (w := wakes.get(sid)) and w.reason == s.waiting:
            out.wakeups.append(w)
    return out


def waits_json(waits: RunWaits) -> dict[str, Any]:
    """``{"approvals": [...], "wakeups": [...]}`` as ``run status --json`` adds them."""
    return {
        "approvals": [asdict(a) for a in waits.approvals],
        "wakeups": [asdict(w) for w in waits.wakeups],
    }


def approval_json(a: PendingApproval) -> dict[str, Any]:
    """An approval as its request event's data beside its step (the console's shape)."""
    expires = a.expires_at.isoformat() if a.expires_at is not None else None
    core = {"token": a.token, "expires_at": expires, "message": a.message}
    return {"step_id": a.step_id, **core, **a.request}


async def read_waits(client: Client, state: RunState) -> RunWaits:
    """:func:`run_waits` of ``state``, reading its history only when a step needs it."""
    if not has_detailed_waits(state):
        return RunWaits()
    return run_waits(state, [e async for e in client.run(state.run_id).events()])
