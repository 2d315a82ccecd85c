"""The requests behind the client's trigger methods: create, list, show, enable, disable,
delete, fire, history.

``Client`` holds a :class:`Triggers` (kept apart so the client module stays about single
runs) and keeps the public methods itself. Triggers are
:class:`~dagnats.dag.definition.triggers.TriggerDef` records; a dict in the DagNats JSON
form is accepted wherever one is.
"""

from __future__ import annotations

from typing import Any

from dagnats.client.redrive import ApiCall
from dagnats.dag.definition.triggers import TriggerDef, parse_trigger


def _trigger(raw: dict[str, Any]) -> TriggerDef:
    return TriggerDef.model_validate({k: v for k, v in raw.items() if k in TriggerDef.model_fields})


class Triggers:
    """It knows only ``call``; the ``Client`` wraps the runs a fire starts into handles."""

    def __init__(self, call: ApiCall) -> None:
        self._call = call

    async def create(self, trigger: TriggerDef | dict[str, Any]) -> str:
        # The same checks as the server's, before any request (an id is made if absent).
        source = trigger.to_json() if isinstance(trigger, TriggerDef) else trigger
        raw = parse_trigger(source).to_json()
        out = await self._call("trigger.create", {"trigger": raw})
        return str(out["id"])

    async def list_for(self, workflow: str | None) -> list[TriggerDef]:
        return [_trigger(t) for t in await self._call("trigger.list", {"workflow": workflow})]

    async def get(self, trigger_id: str) -> TriggerDef:
        return _trigger(await self._call("trigger.get", {"id": trigger_id}))

    async def enable(self, trigger_id: str) -> None:
        await self._call("trigger.enable", {"id": trigger_id})

    async def disable(self, trigger_id: str) -> None:
        await self._call("trigger.disable", {"id": trigger_id})

    async def delete(self, trigger_id: str) -> None:
        await self._call("trigger.delete", {"id": trigger_id})

    async def fire(self, trigger_id: str, data: Any) -> dict[str, Any]:
        """The reply: ``run_id`` and ``workflow`` of the run the fire started."""
        out: dict[str, Any] = await self._call("trigger.fire", {"id": trigger_id, "data": data})
        return out

    async def history(self, trigger_id: str) -> list[dict[str, Any]]:
        rows = await self._call("trigger.history", {"id": trigger_id})
        return [dict(r) for r in rows]
