"""What the API does, independent of how requests arrive (micro service or HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.history import has_history, read_history
from dagnats._nats.kvscan import get_entry
from dagnats._nats.logs import purge_run_logs
from dagnats._nats.payloads import Payloads, decode_run
from dagnats._nats.publish import append_event, surely_not_stored
from dagnats._nats.state import current_state
from dagnats._nats.stores import DefinitionStore, same_definition
from dagnats._nats.types import (
    KeyValue,
    NatsClient,
)
from dagnats.dag.definition.conditions import input_value
from dagnats.dag.definition.jsonschema import validate_instance
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.state import RunState
from dagnats.errors import (
    ApiError,
    InputValidationError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from dagnats.protocol import events as ev
from dagnats.protocol import keys
from dagnats.protocol.ids import is_fresh_run_id
from dagnats.protocol.limits import check_name
from dagnats.server import run_lookup, singleton
from dagnats.server.interactions import Interactions, _run_id, _workflow
from dagnats.server.schedules import Schedules, parse_run_at

log = logging.getLogger(__name__)

# A stored idempotency key whose run has no history yet may be a start still in flight (its
# publish can take up to the JetStream publish timeout, 5 s): wait this long for the history
# before treating the key as stale.
IDEMPOTENCY_GRACE_S = 6.0
# How long a forced delete waits for a running run to end after the cancel request.
FORCE_DELETE_WAIT_S = 10.0
# A deleted run's id is refused this long: the streams' dedup window (120 s) plus margin.
DELETED_ID_HOLD_S = 130
MAX_REVISION = 2**63 - 1  # a stream sequence: JetStream refuses more


class Operations:
    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        # Signals, external events and approval decisions (the API's run interactions).
        self.interactions = Interactions(self.js)
        self.payloads = Payloads(self.js)
        # Looked up by open() (each lookup is a JetStream round trip), together or not at all.
        self._stores: tuple[DefinitionStore, KeyValue, KeyValue] | None = None
        self._schedules: Schedules | None = None
        # The trigger records (server/trigger_ops.py) when this process serves them: a
        # workflow file that lists triggers is registered through them.
        self.triggers: Any = None
        self._concurrency_kv: KeyValue | None = None

    async def open(self) -> None:
        js = self.js
        defs = await DefinitionStore.open(js)
        await defs.watch()
        runs = await js.key_value(protocol.KV_RUNS)
        idem = await js.key_value(protocol.KV_IDEMPOTENCY)
        self._stores = (defs, runs, idem)
        self._schedules = Schedules(self.nc, await js.key_value(protocol.KV_SCHEDULED))
        await self.interactions.open()

    def _opened(self) -> tuple[DefinitionStore, KeyValue, KeyValue]:
        if self._stores is None:
            raise RuntimeError("Operations.open() was not awaited")
        return self._stores

    @property
    def defs(self) -> DefinitionStore:
        """Workflow definitions (cached, kept fresh by a KV watch)."""
        return self._opened()[0]

    @property
    def schedules(self) -> Schedules:
        """Runs that start later (``scheduled_runs``)."""
        if self._schedules is None:
            raise RuntimeError("Operations.open() was not awaited")
        return self._schedules

    @property
    def runs(self) -> KeyValue:
        """Run snapshots (``workflow_runs``)."""
        return self._opened()[1]

    @property
    def idem(self) -> KeyValue:
        """Start idempotency keys and held ids of deleted runs (``idempotency_keys``)."""
        return self._opened()[2]

    async def close(self) -> None:
        if self._stores is not None:
            await self.defs.close()

    # --- workflows ---

    async def register_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        source = body.get("definition")
        if source is None:
            raise ApiError("field 'definition' is required", code=400)
        if self.triggers is not None:  # it registers the file's triggers too, if any
            return dict(await self.triggers.register_workflow(source))
        return await self.register_definition(source)

    async def register_definition(self, source: Any) -> dict[str, Any]:
        """Store a definition (a new revision unless it is the same as the latest)."""
        defn = load_definition(source)
        current = await self.defs.get(defn.name)  # cached: the usual no-op costs no KV read
        if current is not None and same_definition(current[0], defn):
            rev = current[1]  # registering the same definition again is a no-op
        else:
            rev = await self.defs.put(defn)  # the same check again, against the KV
        return {"name": defn.name, "version": defn.version, "revision": rev}

    async def list_workflows(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for name in (await self.defs.names())[: run_lookup.MAX_LIST]:
            found = await self.defs.get(name)
            if found is not None:
                d, rev = found
                out.append(
                    {
                        "name": d.name,
                        "version": d.version,
                        "revision": rev,
                        "steps": len(d.steps),
                        "description": d.description,
                    }
                )
        return out

    async def get_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _workflow_name(body)
        d, rev = await self.workflow_revision(name, body.get("revision"))
        return {
            "revision": rev,
            "definition": d.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    async def delete_workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _workflow_name(body)
        if await self.defs.get(name) is None:
            raise WorkflowNotFoundError(f"workflow '{name}' is not registered")
        await self.defs.delete(name)
        return {"deleted": name}

    # --- runs ---

    async def workflow_revision(self, name: str, revision: Any) -> tuple[WorkflowDef, int]:
        """The definition a start would use; ``WorkflowNotFoundError`` when there is none."""
        wanted = _revision({"revision": revision})
        found = await self.defs.get(name, wanted)
        if found is not None:
            return found
        if wanted is None:
            raise WorkflowNotFoundError(f"workflow '{name}' is not registered")
        stored = await self.defs.revisions(name)
        if not stored:
            raise WorkflowNotFoundError(f"workflow '{name}' is not registered")
        raise WorkflowNotFoundError(
            f"workflow '{name}' has no revision {wanted}; its revisions: {_spans(stored)}"
        )

    async def start_run(
        self, body: dict[str, Any], *, trusted_input: bool = False
    ) -> dict[str, Any]:
        """Start a run. ``trusted_input``: the input is a stored run's (``rerun``), already
        accepted once (and possibly a payload reference), so the schema is not asked again
        and the workflow's ``idempotency_key`` expression, which would find that run, is
        not applied."""
        name = _workflow_name(body, "workflow")
        defn, revision = await self.workflow_revision(name, body.get("revision"))
        run_input = body.get("input")
        if not trusted_input:
            run_input = _checked_input(defn, name, run_input)
        run_id = _chosen_or_new_run_id(body)
        scheduled = await self._schedule(body, run_id, name, revision, run_input)
        if scheduled is not None:
            return scheduled
        key = body.get("idempotency_key")
        if key is None and defn.idempotency_key and not trusted_input:
            # Go's dot path into the run input ("order_id"); "input.order_id" is the same.
            value = input_value(defn.idempotency_key, run_input)
            key = None if value is None else json.dumps(value, sort_keys=True)
        idem_key, idem_rev = None, None
        if key is not None:
            idem_key = keys.start_idempotency_key(name, key)
            existing, idem_rev = await self._claim_key(idem_key, run_id)
            if existing is not None:
                return {
                    "run_id": existing,
                    "workflow": name,
                    "revision": revision,
                    "duplicate": True,
                }
        if body.get("run_id") and not _fresh_id(body, run_id):
            await self._check_run_id_free(run_id)
        active = await singleton.claim(
            self.js, await self._concurrency(), self._state, defn, run_input, run_id
        )
        if active is not None:  # a singleton in skip mode: the caller gets the active run
            return {"run_id": active, "workflow": name, "revision": revision, "duplicate": True}
        rerun_of = body.get("rerun_of")
        root = body.get("control_root")
        started = ev.workflow_started(
            run_id,
            name,
            revision,
            run_input,
            idempotency_key=key,
            rerun_of=rerun_of if isinstance(rerun_of, str) else None,
            control_root=_run_id({"run_id": root}) if isinstance(root, str) else None,
        )
        try:
            # Unique per request: an id reused after delete_run must start again (a second
            # workflow.started for a live run is a no-op for the engine anyway).
            await append_event(self.js, *started)
        except Exception as exc:
            if not await self._stored_anyway(exc, run_id, idem_key, idem_rev):
                raise
        return {"run_id": run_id, "workflow": name, "revision": revision, "duplicate": False}

    async def _stored_anyway(
        self, exc: Exception, run_id: str, idem_key: str | None, idem_rev: int | None
    ) -> bool:
        """Whether the start whose publish raised ``exc`` happened all the same: one that timed
        out may have been stored, one nobody answered was not (asking the history then would
        wait out the election, 5 s). The key is released only when the start surely failed."""
        exists: bool | None = False if surely_not_stored(exc) else None
        if exists is None:
            with contextlib.suppress(Exception):  # NATS trouble: unknown (None), key kept
                exists = await self._has_history(run_id)
        if exists is False and idem_key is not None:
            await self._release_key(idem_key, idem_rev)
        return bool(exists)

    async def _schedule(
        self, body: dict[str, Any], run_id: str, name: str, revision: int, run_input: Any
    ) -> dict[str, Any] | None:
        """A start with ``run_at`` more than a second ahead: stored, not started (None: now)."""
        run_at = None if body.get("run_at") is None else parse_run_at(body["run_at"])
        if run_at is None:
            return None
        if body.get("idempotency_key") is not None:
            raise ApiError("idempotency_key cannot be combined with run_at", code=400)
        if body.get("run_id") and not _fresh_id(body, run_id):
            await self._check_run_id_free(run_id)
        return await self.schedules.schedule(run_id, name, revision, run_input, run_at)

    async def _check_run_id_free(self, run_id: str) -> None:
        """An explicit run id must be new, and not one deleted within the dedup window:
        that run's task, timer and record ids would swallow the new run's."""
        entry = await get_entry(self.runs, run_id)
        if entry is not None and entry.value is not None:
            raise ApiError(f"run '{run_id}' already exists", code=409)
        tomb = await get_entry(self.idem, keys.deleted_run_key(run_id))
        if tomb is not None and tomb.value is not None:
            raise ApiError(
                f"run id '{run_id}' was deleted less than {DELETED_ID_HOLD_S}s ago; its "
                "messages are still in the streams' dedup window: use another id or wait",
                code=409,
            )

    async def _concurrency(self) -> KeyValue:
        """The ``concurrency`` bucket (singleton claims), looked up on first use."""
        if self._concurrency_kv is None:
            self._concurrency_kv = await self.js.key_value(protocol.KV_CONCURRENCY)
        return self._concurrency_kv

    async def _has_history(self, run_id: str) -> bool:
        return await has_history(self.js, run_id)

    async def _claim_key(self, idem_key: str, run_id: str) -> tuple[str | None, int | None]:
        """Store ``run_id`` under the idempotency key: ``(None, revision)`` when it is ours,
        ``(earlier_run_id, None)`` when an existing run holds it.

        A key whose run never got a history (the start failed after the key was stored and
        the key could not be released) is stale: it is taken over with a CAS update.
        """
        for _ in range(5):
            created = await cas.write(self.idem, idem_key, run_id.encode(), 0)
            if created is not None:
                return None, created
            entry = await get_entry(self.idem, idem_key)
            if entry is None or not entry.value:
                continue  # released meanwhile: try to create it again
            existing = entry.value.decode()
            if await self._started_within_grace(existing):
                return existing, None
            log.warning(
                "idempotency key %s points at run %s, which has no history: replacing it",
                idem_key,
                existing,
            )
            taken = await cas.write(self.idem, idem_key, run_id.encode(), entry.revision or 0)
            if taken is not None:
                return None, taken
            # changed meanwhile: look again
        raise ApiError(f"idempotency key {idem_key} is contended; retry", code=409)

    async def _started_within_grace(self, run_id: str) -> bool:
        """Whether the run has (or within the grace period gets) a history."""
        deadline = time.monotonic() + IDEMPOTENCY_GRACE_S
        while True:
            if await self._has_history(run_id):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)

    async def _release_run_key(self, idem_key: str, run_id: str) -> None:
        entry = await get_entry(self.idem, idem_key)
        if entry is not None and entry.value is not None and entry.value.decode() == run_id:
            await self._release_key(idem_key, entry.revision)

    async def _release_key(self, idem_key: str, revision: int | None) -> None:
        """Best effort: drop a key whose run could not be started (only if still ours)."""
        try:
            await self.idem.delete(idem_key, last=revision)
        except Exception as exc:  # noqa: BLE001 - best effort: the key expires anyway
            log.warning("could not release idempotency key %s: %s", idem_key, exc)

    async def _state(self, run_id: str) -> RunState:
        """The run as its log has it (the snapshot may lag the log: ADR 0005)."""
        return await current_state(self.nc, self.runs, self.defs, self.payloads, run_id)

    async def get_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id = _run_id(body)
        try:
            return (await self._state(run_id)).model_dump(mode="json", exclude_none=True)
        except RunNotFoundError:
            record = await self.schedules.get(run_id)
            if record is None or record.state not in ("scheduled", "cancelled"):
                raise
            return self.schedules.as_state(record)

    async def list_runs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Summaries newest first by creation time (``workflow``, ``status``, ``since``);
        ``scheduled``: the runs waiting for their ``run_at``, soonest first."""
        if body.get("scheduled") or body.get("status") == "scheduled":
            limit = max(1, min(int(body.get("limit") or 100), run_lookup.MAX_LIST))
            return await self.schedules.list(body.get("workflow"), limit)
        return await run_lookup.list_runs(self.runs, self.payloads, body)

    async def run_events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        run_id = _run_id(body)
        history = await read_history(self.nc, run_id)
        if not history:
            raise RunNotFoundError(f"run '{run_id}' not found")
        return [e.model_dump(mode="json", exclude_none=True) | {"seq": e.seq} for e in history]

    async def cancel_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id = _run_id(body)
        before_start = await self.schedules.cancel(run_id)
        if before_start is not None:  # it had not started: now it never will
            return {"run_id": run_id, "status": "cancelled", "cancelled": before_start}
        state = await self._state(run_id)
        if state.terminal:
            return {"run_id": run_id, "status": state.status, "cancelled": False}
        await self._request_cancel(run_id, body.get("reason") or "cancelled by request")
        return {"run_id": run_id, "status": state.status, "cancelled": True}

    async def _request_cancel(self, run_id: str, reason: str) -> None:
        await append_event(self.js, *ev.cancel_requested(run_id, reason))

    async def delete_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id = _run_id(body)
        state = await self._state(run_id)
        if not state.terminal:
            if not body.get("force"):
                raise ApiError(
                    f"run '{run_id}' is {state.status}; cancel it first or pass force", code=409
                )
            await self._cancel_and_wait(run_id)
        await self.runs.purge(run_id)
        await self.js.purge_stream(protocol.HISTORY_STREAM, subject=protocol.history_filter(run_id))
        # Engines drop their cached state; the id is held while the old run's dedup ids live.
        await self.nc.publish(protocol.forget_subject(run_id), b"")
        # Held once: a second delete within the hold finds it there already.
        await cas.write(self.idem, keys.deleted_run_key(run_id), b"1", 0, ttl_s=DELETED_ID_HOLD_S)
        if state.idempotency_key is not None:  # the key no longer names a run
            await self._release_run_key(
                keys.start_idempotency_key(state.workflow, state.idempotency_key), run_id
            )
        await self.payloads.forget_snapshot(run_id)
        await purge_run_logs(self.js, run_id)
        return {"deleted": run_id}

    async def _cancel_and_wait(self, run_id: str) -> None:
        """Cancel a running run and wait until the engine has stored its terminal snapshot.

        Purging under a live run would let the engine write it back (or act on a log that is
        gone); so the run is ended first, as ``RunHandle.result`` waits: subscribe to the
        terminal announcement, then read the snapshot once.
        """
        sub = await self.nc.subscribe(protocol.done_subject(run_id))
        try:
            await self._request_cancel(run_id, "deleted by request (force)")
            entry = await get_entry(self.runs, run_id)
            if entry is not None and entry.value:
                if (await decode_run(self.payloads, entry.value)).terminal:
                    return
            try:
                await sub.next_msg(timeout=FORCE_DELETE_WAIT_S)
            except TimeoutError as exc:
                raise ApiError(
                    f"run '{run_id}' did not end within {FORCE_DELETE_WAIT_S:g}s of the cancel "
                    "request; it was not deleted (try again, or check that the engine runs)",
                    code=409,
                ) from exc
        finally:
            await sub.unsubscribe()


def _workflow_name(body: dict[str, Any], field: str = "name") -> str:
    """A workflow name (dotted names allowed; 400 otherwise: the store would refuse it)."""
    return _workflow(body, field)


def _checked_input(defn: WorkflowDef, name: str, run_input: Any) -> Any:
    """The run's input, if the workflow's ``input_schema`` accepts it."""
    if defn.input_schema is not None:
        problems = validate_instance(defn.input_schema, run_input)
        if problems:
            raise InputValidationError(
                f"input rejected by the input_schema of workflow '{name}': " + "; ".join(problems)
            )
    return run_input


def _chosen_or_new_run_id(body: dict[str, Any]) -> str:
    """The run id the caller chose (checked), else a new one."""
    run_id = body.get("run_id") or protocol.new_run_id()
    return check_name(run_id, "run_id")


def _spans(revisions: list[int]) -> str:
    """``1-3, 7`` for [1, 2, 3, 7]: a long history stays one short line."""
    spans: list[list[int]] = []
    for r in revisions:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def _fresh_id(body: dict[str, Any], run_id: str) -> bool:
    """A run id the client just made (``fresh_run_id``: it subscribed to the run's end
    before the start) is new by construction: its check (two KV reads) is skipped."""
    return body.get("fresh_run_id") is True and is_fresh_run_id(run_id)


def _revision(body: dict[str, Any]) -> int | None:
    """The optional ``revision`` field: a positive integer."""
    value = body.get("revision")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REVISION:
        raise ApiError(
            f"field 'revision' must be an integer from 1 to 2^63-1, got {value!r:.60}", code=400
        )
    return value
