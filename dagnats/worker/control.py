"""``ctx.control``: the control plane for handlers whose step declares ``"control-plane"``.

A handler may register a child workflow definition and start runs of it (an orchestrator,
a planner that needs a whole sub-pipeline). Every operation is bounded per *root* run: the
run that no control plane started, shared with everything started beneath it, so a handler
cannot multiply itself without limit. The budget is a list of operation keys in the
``concurrency`` bucket (``protocol.keys.control_key``), changed by CAS; the keys derive from
the task's idempotency key, so a retried handler repeats its operations instead of spending
the budget twice, and a repeated start is answered with the same child run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.api import api_request
from dagnats._nats.types import KeyValue, NatsClient
from dagnats.errors import ApiError, CapabilityError
from dagnats.protocol import keys

MAX_CONTROL_OPS = 100  # registrations + starts per root run
CONTROL_TIMEOUT_S = 10.0
_CAS_TRIES = 10


class ControlPlane:
    """Register child definitions and start child runs, within the root run's budget."""

    def __init__(
        self, nc: NatsClient, kv: KeyValue, message: protocol.TaskMessage, root_run_id: str
    ) -> None:
        self._nc = nc
        self._kv = kv
        self._root = root_run_id
        self._run_id = message.run_id
        self._op_prefix = f"{message.idempotency_key}.{message.iteration}"
        self._ops = 0

    @property
    def root_run_id(self) -> str:
        """The run whose budget of MAX_CONTROL_OPS operations this handler shares."""
        return self._root

    async def register(self, definition: Mapping[str, Any] | str | Any) -> dict[str, Any]:
        """Register a workflow definition (a dict, JSON text or a ``Workflow``); returns
        ``{"name", "version", "revision"}``. An invalid one raises ``DefinitionError``."""
        if hasattr(definition, "to_dict"):
            definition = definition.to_dict()
        elif isinstance(definition, str):
            definition = json.loads(definition)
        await self._spend()
        out: dict[str, Any] = await api_request(
            self._nc,
            "workflow.register",
            {"definition": definition},
            timeout_s=CONTROL_TIMEOUT_S,
        )
        return out

    async def start(self, workflow: str, input: Any = None) -> str:
        """Start a run of ``workflow`` with ``input``; returns the child run's id.

        A retry of this handler that starts the same children again gets the same runs.
        """
        op = await self._spend()
        out = await api_request(
            self._nc,
            "run.start",
            {
                "workflow": workflow,
                "input": input,
                "idempotency_key": op,
                "control_root": self._root,
            },
            timeout_s=CONTROL_TIMEOUT_S,
        )
        return str(out["run_id"])

    async def _spend(self) -> str:
        """Take one operation from the root's budget (a repeat of the same op is free)."""
        self._ops += 1
        op = f"{self._op_prefix}.{self._ops}"
        key = keys.control_key(self._root)
        for _ in range(_CAS_TRIES):
            state, rev = await cas.read_json(self._kv, key)
            spent = list((state or {}).get("ops", []))
            if op in spent:
                return op
            if len(spent) >= MAX_CONTROL_OPS:
                raise CapabilityError(
                    f"run {self._run_id}: the control plane's budget of {MAX_CONTROL_OPS} "
                    f"operations per root run (MAX_CONTROL_OPS) is used up (root run "
                    f"{self._root})"
                )
            if await cas.write_json(self._kv, key, {"ops": [*spent, op]}, rev):
                return op
        raise ApiError(f"the control-plane budget of run {self._root} is contended", code=409)


def no_control(step_id: str, task: str) -> CapabilityError:
    return CapabilityError(
        f"step {step_id!r} (task {task!r}) may not use ctx.control: its step does not declare "
        "required_capabilities: ['control-plane']"
    )
