"""The client's trigger methods: create, list, show, enable, disable, delete, fire, history.

A mixin of :class:`dagnats.client.client.Client` (kept apart so the client module stays
about single runs). Triggers are :class:`~dagnats.dag.definition.triggers.TriggerDef`
records; a dict in the DagNats JSON form is accepted wherever one is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from dagnats.client.handle import RunHandle
from dagnats.dag.definition.triggers import TriggerDef, parse_trigger

if TYPE_CHECKING:
    from dagnats.client.client import Client


def _trigger(raw: dict[str, Any]) -> TriggerDef:
    return TriggerDef.model_validate({k: v for k, v in raw.items() if k in TriggerDef.model_fields})


class TriggerMethods:
    """Mixed into ``Client``."""

    if TYPE_CHECKING:

        async def call(
            self, op: str, body: dict[str, Any] | None = None, *, timeout_s: float | None = None
        ) -> Any: ...

    async def create_trigger(self, trigger: TriggerDef | dict[str, Any]) -> str:
        """Create a trigger (checked here first, so a bad one fails without a request);
        returns its id (made when the definition has none)."""
        # The same checks as the server's, before any request (an id is made if absent).
        source = trigger.to_json() if isinstance(trigger, TriggerDef) else trigger
        raw = parse_trigger(source).to_json()
        out = await self.call("trigger.create", {"trigger": raw})
        return str(out["id"])

    async def list_triggers(self, workflow: str | None = None) -> list[TriggerDef]:
        return [_trigger(t) for t in await self.call("trigger.list", {"workflow": workflow})]

    async def get_trigger(self, trigger_id: str) -> TriggerDef:
        return _trigger(await self.call("trigger.get", {"id": trigger_id}))

    async def enable_trigger(self, trigger_id: str) -> None:
        await self.call("trigger.enable", {"id": trigger_id})

    async def disable_trigger(self, trigger_id: str) -> None:
        await self.call("trigger.disable", {"id": trigger_id})

    async def delete_trigger(self, trigger_id: str) -> None:
        await self.call("trigger.delete", {"id": trigger_id})

    async def fire_trigger(self, trigger_id: str, data: Any = None) -> RunHandle:
        """Fire now, by hand (``trigger: "manual"`` in the envelope; no debounce)."""
        out = await self.call("trigger.fire", {"id": trigger_id, "data": data})
        client = cast("Client", self)
        return RunHandle(client, out["run_id"], workflow=out.get("workflow"), known=True)

    async def trigger_history(self, trigger_id: str) -> list[dict[str, Any]]:
        """The trigger's recent fires, newest first (``ts``, ``kind``, ``run_id``, ``minute``)."""
        rows = await self.call("trigger.history", {"id": trigger_id})
        return [dict(r) for r in rows]
