"""Trigger records and trigger starts: what the API and the trigger services share.

Triggers are :class:`~dagnats.dag.definition.triggers.TriggerDef` records in the ``triggers``
bucket (key = id). :class:`TriggerOps` creates, lists, changes and deletes them (refusing
two HTTP triggers on one method and path, or two webhooks on one path, at creation), keeps
an index of them fresh with a KV watch (the HTTP routes and trigger services look paths and
subjects up in memory), and starts a trigger's run with the trigger envelope as its input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.history import has_history
from dagnats._nats.kvscan import list_keys
from dagnats._nats.payloads import THRESHOLD_BYTES
from dagnats._nats.publish import append_event
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import KeyValue
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.definition.triggers import TriggerDef, parse_trigger, split_triggers
from dagnats.errors import ApiError, NotFoundError, WorkflowNotFoundError
from dagnats.protocol import clock
from dagnats.protocol import events as ev
from dagnats.protocol.control import MAX_FIRES_KEPT, TriggerFire, TriggerState
from dagnats.protocol.ids import cron_run_id
from dagnats.server.operations import Operations, _checked_input

log = logging.getLogger(__name__)

MAX_TRIGGERS = 10_000
MAX_CAS_TRIES = 5


def envelope(kind: str, trigger: TriggerDef, data: Any, now: datetime) -> dict[str, Any]:
    """A trigger-started run's input: ``{trigger, source, workflow_id, timestamp, data}``."""
    return {
        "trigger": kind,
        "source": trigger.id,
        "workflow_id": trigger.workflow_id,
        "timestamp": now.astimezone(UTC).isoformat(),
        "data": data,
    }


class TriggerOps:
    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        ops.triggers = self  # workflow files listing triggers register through us
        self.js = ops.js
        self._kv: tuple[KeyValue, KeyValue] | None = None
        self.index: dict[str, TriggerDef] = {}
        """Every trigger by id, as the KV watch last reported it."""
        self._watch_task: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self.schemas: dict[str, tuple[Any, Any]] = {}
        """Per workflow of an HTTP trigger: its (input_schema, output_schema), for OpenAPI."""
        self._pending: dict[str, list[TriggerFire]] = {}  # fires not yet written, per trigger
        self._flushing: dict[str, asyncio.Task[None]] = {}
        self.changed = asyncio.Event()
        """Set whenever the index changes (the trigger service reconciles on it)."""

    async def open(self) -> None:
        kv = await self.js.key_value(protocol.KV_TRIGGERS)
        state = await self.js.key_value(protocol.KV_TRIGGER_STATE)
        self._kv = (kv, state)
        self._watcher = await kv.watchall(ignore_deletes=False)
        loaded = asyncio.Event()
        self._watch_task = asyncio.create_task(self._follow(loaded))
        await asyncio.wait_for(loaded.wait(), 10.0)

    async def close(self) -> None:
        flushing = [t for t in self._flushing.values() if not t.done()]
        if flushing:
            await asyncio.wait(flushing, timeout=5.0)
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        if self._watch_task is not None:
            await stop_task(self._watch_task)
        self._watcher = self._watch_task = None

    async def _follow(self, loaded: asyncio.Event) -> None:
        async for entry in self._watcher:
            if entry is None:  # the end of the initial values
                loaded.set()
                continue
            if not entry.value or entry.operation in ("DEL", "PURGE"):
                self.index.pop(entry.key, None)
            else:
                try:
                    trigger = TriggerDef.model_validate_json(entry.value)
                except ValueError as exc:
                    log.error("ignoring unreadable trigger %s: %s", entry.key, exc)
                else:
                    self.index[entry.key] = trigger
                    if trigger.http is not None:
                        await self._remember_schemas(trigger.workflow_id)
            loaded.set()
            self.changed.set()

    async def _remember_schemas(self, workflow: str) -> None:
        with contextlib.suppress(Exception):  # documentation only: never stop the watch
            found = await self.ops.defs.get(workflow)
            if found is not None:
                self.schemas[workflow] = (found[0].input_schema, found[0].output_schema)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("TriggerOps.open() was not awaited")
        return self._kv[0]

    @property
    def state_kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("TriggerOps.open() was not awaited")
        return self._kv[1]

    # --- records ---

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("trigger", body)
        trigger = parse_trigger({"source": "api", **raw} if isinstance(raw, dict) else raw)
        if await self.ops.defs.get(trigger.workflow_id) is None:
            raise WorkflowNotFoundError(
                f"trigger {trigger.id!r}: workflow {trigger.workflow_id!r} is not registered"
            )
        await self._check_free(trigger, replacing=False)
        if await cas.write(self.kv, trigger.id, trigger.model_dump_json().encode(), 0) is None:
            raise ApiError(f"trigger {trigger.id!r} already exists", code=409)
        self.index[trigger.id] = trigger
        return trigger.to_json()

    async def _check_free(self, trigger: TriggerDef, *, replacing: bool) -> None:
        """Refuse a second HTTP trigger on one method+path, or a second webhook on a path."""
        for other in await self._all():
            if other.id == trigger.id:
                if not replacing:
                    raise ApiError(f"trigger {trigger.id!r} already exists", code=409)
                continue
            if trigger.http and other.http and other.http.path == trigger.http.path:
                if other.http.method == trigger.http.method:
                    raise ApiError(
                        f"trigger {trigger.id!r}: http {trigger.http.method} "
                        f"{trigger.http.path} is already served by trigger {other.id!r}",
                        code=409,
                    )
            if trigger.webhook and other.webhook and other.webhook.path == trigger.webhook.path:
                raise ApiError(
                    f"trigger {trigger.id!r}: webhook.path {trigger.webhook.path} is already "
                    f"used by trigger {other.id!r}",
                    code=409,
                )

    async def _all(self) -> list[TriggerDef]:
        out = []
        for key in sorted(await list_keys(self.kv))[:MAX_TRIGGERS]:
            raw, _ = await cas.read(self.kv, key)
            if raw is not None:
                out.append(TriggerDef.model_validate_json(raw))
        return out

    async def get(self, trigger_id: str) -> TriggerDef:
        raw, _ = await cas.read(self.kv, _tid(trigger_id))
        if raw is None:
            raise NotFoundError(f"trigger {trigger_id!r} not found")
        return TriggerDef.model_validate_json(raw)

    async def list_all(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        workflow = body.get("workflow")
        return [t.to_json() for t in await self._all() if not workflow or t.workflow_id == workflow]

    async def show(self, body: dict[str, Any]) -> dict[str, Any]:
        trigger = await self.get(body.get("id", ""))
        state = await self.state_of(trigger.id)
        return {**trigger.to_json(), "last_minute": state.last_minute, "fires": len(state.fires)}

    async def set_enabled(self, body: dict[str, Any], enabled: bool) -> dict[str, Any]:
        trigger_id = _tid(body.get("id", ""))
        for _ in range(MAX_CAS_TRIES):
            raw, revision = await cas.read(self.kv, trigger_id)
            if raw is None:
                raise NotFoundError(f"trigger {trigger_id!r} not found")
            changed = TriggerDef.model_validate_json(raw).model_copy(update={"enabled": enabled})
            data = changed.model_dump_json().encode()
            if await cas.write(self.kv, trigger_id, data, revision) is not None:
                self.index[trigger_id] = changed
                return changed.to_json()
        raise ApiError(f"trigger {trigger_id!r} is contended; retry", code=409)

    async def enable(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.set_enabled(body, True)

    async def disable(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.set_enabled(body, False)

    async def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        trigger = await self.get(body.get("id", ""))
        await self.kv.purge(trigger.id)
        await self.state_kv.purge(trigger.id)
        self.index.pop(trigger.id, None)
        return {"deleted": trigger.id}

    async def history(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        trigger = await self.get(body.get("id", ""))
        state = await self.state_of(trigger.id)
        return [f.model_dump(mode="json", exclude_none=True) for f in reversed(state.fires)]

    async def fire(self, body: dict[str, Any]) -> dict[str, Any]:
        """A manual fire: a run now, with ``trigger: "manual"`` (debounce does not apply)."""
        trigger = await self.get(body.get("id", ""))
        run_id = await self.start(trigger, "manual", body.get("data"))
        return {"run_id": run_id, "workflow": trigger.workflow_id}

    async def state_of(self, trigger_id: str) -> TriggerState:
        raw, _ = await cas.read(self.state_kv, trigger_id)
        return TriggerState() if raw is None else TriggerState.model_validate_json(raw)

    async def record_fire(self, trigger_id: str, fire: TriggerFire, *, wait: bool = True) -> None:
        """Keep a fire in the trigger's state (best effort: the fire itself happened).

        Fires are coalesced per trigger: one writer task folds every fire that came while
        it wrote into its next compare-and-swap, so a busy webhook costs one KV write per
        batch rather than a contended write per request. ``wait``: until it is written."""
        pending = self._pending.setdefault(trigger_id, [])
        pending.append(fire)
        del pending[:-MAX_FIRES_KEPT]
        task = self._flushing.get(trigger_id)
        if task is None or task.done():
            task = asyncio.create_task(self._flush(trigger_id))
            self._flushing[trigger_id] = task
        if wait:
            await asyncio.shield(task)

    async def _flush(self, trigger_id: str) -> None:
        while self._pending.get(trigger_id):
            batch = self._pending.pop(trigger_id)
            try:
                await self._write_fires(trigger_id, batch)
            except Exception as exc:  # noqa: BLE001 - NATS trouble: the fires happened anyway
                log.warning("could not record fires of trigger %s: %s", trigger_id, exc)

    async def _write_fires(self, trigger_id: str, batch: list[TriggerFire]) -> None:
        for _ in range(MAX_CAS_TRIES):
            raw, revision = await cas.read(self.state_kv, trigger_id)
            state = TriggerState() if raw is None else TriggerState.model_validate_json(raw)
            known = {f.minute for f in state.fires if f.minute is not None}
            for fire in batch:
                if fire.minute is None or fire.minute not in known:  # another service's?
                    state = state.with_fire(fire)
            if await cas.write(self.state_kv, trigger_id, state.encode(), revision) is not None:
                return
        log.warning("could not record fires of trigger %s (contended)", trigger_id)

    # --- starts ---

    async def start(
        self,
        trigger: TriggerDef,
        kind: str,
        data: Any,
        *,
        run_id: str | None = None,
        minute: int | None = None,
        token: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """Start the trigger's workflow with the envelope of ``data``; the run id."""
        run_id, _ = await self._start(
            trigger, kind, data, run_id=run_id, minute=minute, token=token, now=now
        )
        return run_id

    async def _start(
        self,
        trigger: TriggerDef,
        kind: str,
        data: Any,
        *,
        run_id: str | None,
        minute: int | None,
        token: str | None,
        now: datetime | None,
    ) -> tuple[str, bool]:
        """:meth:`start`, and whether the stream dropped the start as a duplicate."""
        now = now or clock.now()
        found = await self.ops.defs.get(trigger.workflow_id)
        if found is None:
            raise WorkflowNotFoundError(
                f"trigger {trigger.id!r}: workflow {trigger.workflow_id!r} is not registered"
            )
        defn, revision = found
        if trigger.http is not None:
            self.schemas[trigger.workflow_id] = (defn.input_schema, defn.output_schema)
        run_input = _checked_input(defn, trigger.workflow_id, envelope(kind, trigger, data, now))
        run_id = run_id or protocol.new_run_id()
        if len(json.dumps(run_input, default=str)) > THRESHOLD_BYTES:
            # A webhook body may be up to 1 MiB: the event carries a reference to it.
            run_input = await self.ops.payloads.offload(f"{run_id}/input", run_input)
        started = ev.trigger_started(
            run_id, trigger.workflow_id, revision, run_input,
            trigger_id=trigger.id, minute=minute, token=token,
        )  # fmt: skip
        ack = await append_event(self.js, *started)
        if minute is None:  # a cron minute is recorded by fire_minute
            fire = TriggerFire(ts=now, kind=kind, run_id=run_id)
            await self.record_fire(trigger.id, fire, wait=kind == "manual")
        return run_id, bool(ack.duplicate)

    async def fire_minute(self, trigger: TriggerDef, minute: int) -> str | None:
        """Fire a cron trigger for one minute, once: the same run id and dedup id in every
        trigger service; a run that already has a history (past the dedup window) is not
        started again. The run id, or ``None`` when the minute had fired already."""
        run_id = cron_run_id(trigger.id, minute)
        if await has_history(self.js, run_id):
            await self.record_fire(trigger.id, _minute_fire(minute, run_id))
            return None
        at = datetime.fromtimestamp(minute * 60, UTC)
        _, duplicate = await self._start(
            trigger, "cron", None, run_id=run_id, minute=minute, token=None, now=at
        )
        await self.record_fire(trigger.id, _minute_fire(minute, run_id))
        return None if duplicate else run_id

    # --- workflow files ---

    async def register_workflow(self, source: Any) -> dict[str, Any]:
        """Register a workflow and the triggers its file lists (``"triggers": [...]``).

        Everything is checked before anything is written. Triggers the file listed before
        but no longer lists are deleted; an id held by a trigger of another workflow is
        refused."""
        if isinstance(source, str | bytes):
            source = _json_object(source) or source
        if not isinstance(source, dict) or "triggers" not in source:
            return await self.ops.register_definition(source)
        definition, triggers = split_triggers(source)
        load_definition(definition)  # a bad definition registers no trigger
        for trigger in triggers:
            await self._check_free(trigger, replacing=True)
            existing = self.index.get(trigger.id)
            if existing is not None and existing.workflow_id != trigger.workflow_id:
                raise ApiError(
                    f"trigger {trigger.id!r} belongs to workflow {existing.workflow_id!r}",
                    code=409,
                )
        out = await self.ops.register_definition(definition)
        keep = {t.id for t in triggers}
        for trigger in triggers:
            await self.kv.put(trigger.id, trigger.model_dump_json().encode())
            self.index[trigger.id] = trigger
        for old in await self._all():
            if old.workflow_id == out["name"] and old.source == "workflow" and old.id not in keep:
                await self.kv.purge(old.id)
                self.index.pop(old.id, None)
        return {**out, "triggers": sorted(keep)}


def _minute_fire(minute: int, run_id: str) -> TriggerFire:
    return TriggerFire(
        ts=datetime.fromtimestamp(minute * 60, UTC), kind="cron", run_id=run_id, minute=minute
    )


def _json_object(source: str | bytes) -> dict[str, Any] | None:
    """JSON text of a definition that lists triggers, parsed; else None (left to the
    definition loader, which names any JSON error)."""
    try:
        parsed = json.loads(source)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) and "triggers" in parsed else None


def _tid(trigger_id: Any) -> str:
    if not isinstance(trigger_id, str) or not trigger_id:
        raise ApiError("field 'id' (the trigger id) is required", code=400)
    return trigger_id
