"""``Client``: register workflows, start runs and look at them, over the API service."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dagnats import protocol
from dagnats._nats.api import raise_service_error
from dagnats._nats.closing import close_within
from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.connection import request
from dagnats._nats.kvscan import open_bucket
from dagnats._nats.logs import read_run_logs
from dagnats._nats.payloads import REF, THRESHOLD_BYTES, Payloads, is_ref
from dagnats._nats.types import KeyValue, NatsClient
from dagnats.client.handle import Announcements, RunHandle
from dagnats.client.records import (
    RunSummary,
    WorkflowInfo,
    definition_payload,
    span_attributes,
)
from dagnats.client.redrive import (
    MAX_BATCH,
    CancelResult,
    DeadLetter,
    Redrive,
    StartResult,
    since_text,
)
from dagnats.client.registrations import Registrations
from dagnats.client.triggers import Triggers
from dagnats.dag.definition.triggers import TriggerDef
from dagnats.dag.machine.state import RunState
from dagnats.errors import (
    ApiError,
    WorkflowNotFoundError,
)
from dagnats.protocol import limits
from dagnats.protocol.logs import StepLog
from dagnats.telemetry import tracing

DEFAULT_URL = "nats://127.0.0.1:4222"
# A forced delete of a running run waits up to 10 s on the server for the run to end.
FORCE_DELETE_TIMEOUT_S = 20.0


def default_url() -> str:
    return os.environ.get("DAGNATS_NATS_URL") or DEFAULT_URL


class Client:
    """``await Client.connect(url)`` owns its connection; ``Client(connection=nc)`` borrows one."""

    def __init__(self, connection: NatsClient, *, timeout_s: float = 10.0, _owned: bool = False):
        self.nc = connection
        self.js = connection.jetstream()
        self.timeout_s = timeout_s
        self._owned = _owned
        self._registrations = Registrations(self.register)  # of Workflow objects started
        self._kv: dict[str, KeyValue] = {}
        # One instance: it looks the object store up once, on first use.
        self.payloads = Payloads(self.js)
        # Runs started here are subscribed to before their start (RunHandle.result).
        self.announcements = Announcements(self)
        # The requests behind the redrive, bulk and trigger methods below (composition: the
        # public methods stay here, flat, as API.md names them).
        self._redrive = Redrive(self.call)
        self._triggers = Triggers(self.call)

    async def kv(self, bucket: str) -> KeyValue:
        """A KV handle, looked up once (each lookup is a stream-info round trip)."""
        handle = self._kv.get(bucket)
        if handle is None:
            handle = self._kv[bucket] = await self.js.key_value(bucket)
        return handle

    @classmethod
    async def connect(cls, url: str | None = None, *, timeout_s: float = 10.0) -> Client:
        target = url or default_url()
        nc = await connect_nats(target, connect_timeout_s=5, max_reconnect_attempts=10)
        return cls(nc, timeout_s=timeout_s, _owned=True)

    async def close(self) -> None:
        if self._owned:
            await close_within(self.nc)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(
        self, op: str, body: dict[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> Any:
        """One API request; errors come back as the dagnats exception they were.

        A reply too large for one NATS message arrives as a reference to the object store
        and is resolved here.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        # The service refuses deeper bodies too; here it is a clear error, not RecursionError.
        limits.check_depth(body or {}, f"the body of API request {op}")
        data = json.dumps(body or {}, default=str).encode()
        attributes = {} if body is None else span_attributes(body)
        try:
            with tracing.span(f"dagnats {op}", attributes, kind="client"):
                resp = await request(self.nc, f"dagnats.api.{op}", data, timeout_s=timeout)
        except TimeoutError as exc:
            raise ApiError(f"API request {op} timed out after {timeout}s", code=504) from exc
        if resp is None:
            raise ApiError(
                "no dagnats API service is answering on this NATS (is `dagnats serve` running?)",
                code=503,
            )
        raise_service_error(resp.headers or {}, resp.data)
        out = json.loads(resp.data) if resp.data else None
        if isinstance(out, dict) and is_ref(out):
            return await self._resolve_reply(out)
        return out

    async def _resolve_reply(self, ref: dict[str, Any]) -> Any:
        payloads = self.payloads
        value = await payloads.resolve(ref, depth=0)
        try:  # the reply was for this request only
            await (await payloads.store()).delete(ref[REF])
        except Exception:  # noqa: BLE001 - best effort: the object store's max age removes it
            pass  # the object store's max age removes it anyway
        return value

    # --- workflows ---

    async def register(self, workflow: Any) -> WorkflowInfo:
        payload = definition_payload(workflow)
        out = await self.call("workflow.register", {"definition": payload})
        return WorkflowInfo(name=out["name"], version=out["version"], revision=out["revision"])

    async def list_workflows(self) -> list[WorkflowInfo]:
        return [WorkflowInfo(**w) for w in await self.call("workflow.list")]

    async def get_workflow(self, name: str, revision: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = await self.call("workflow.get", {"name": name, "revision": revision})
        return out

    async def delete_workflow(self, name: str) -> None:
        await self.call("workflow.delete", {"name": name})

    # --- runs ---

    async def start(
        self,
        workflow: Any,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        run_id: str | None = None,
        revision: int | None = None,
        run_at: datetime | str | None = None,
    ) -> RunHandle:
        """Start a run of a registered workflow (by name), or of a ``Workflow`` object.

        ``run_at`` (an aware datetime or RFC 3339 text) more than a second ahead stores the
        run as ``scheduled``: it starts then, durably, and can be cancelled before."""
        pinned = None  # the definition whose registered revision this start runs
        if isinstance(workflow, str) and not workflow.endswith(".json"):
            name = workflow  # by name: the latest revision (unless ``revision`` is given)
        else:
            # A definition: run exactly the revision it was registered as, even if someone
            # registers another definition under the same name meanwhile.
            payload = definition_payload(workflow)
            name, registered, key = await self._registrations.revision_of(payload)
            if revision is None:
                revision, pinned = registered, key
        limits.check_depth(input, "run input")  # also when it travels by reference
        fresh = run_id is None
        large = len(json.dumps(input, default=str)) > THRESHOLD_BYTES
        if run_at is None or large:
            # Chosen here so that the end can be subscribed to before the start: a new
            # random id, which the service need not check against existing runs.
            run_id = run_id or protocol.new_run_id()
        if large:
            # The request is one NATS message: a large input travels by reference.
            input = await self.payloads.offload(f"{run_id}/input", input)
        body = {
            "workflow": name,
            "input": input,
            "idempotency_key": idempotency_key,
            "run_id": run_id,
            "revision": revision,
        }
        if fresh and run_id is not None:
            body["fresh_run_id"] = True
        if run_at is not None:
            body["run_at"] = run_at.isoformat() if isinstance(run_at, datetime) else run_at
        early = run_id if run_at is None else None
        if early is not None:
            await self.announcements.open(early)
        try:
            out = await self._start(body, pinned)
        except BaseException:
            if early is not None:
                await self.announcements.drop(early)
            raise
        if early is not None and out["run_id"] != early:
            await self.announcements.drop(early)  # an earlier run had the idempotency key
        handle = RunHandle(
            self, out["run_id"], workflow=name, duplicate=out.get("duplicate", False), known=True
        )
        handle.run_at = out.get("run_at")
        return handle

    async def _start(self, body: dict[str, Any], pinned: str | None) -> Any:
        try:
            return await self.call("run.start", body)
        except WorkflowNotFoundError:
            if pinned is None:
                raise
            # The revision this client registered is gone: register the definition again
            # (once, however many starts find it gone) and start that.
            revision = await self._registrations.again(pinned, body["revision"])
            return await self.call("run.start", {**body, "revision": revision})

    def run(self, run_id: str) -> RunHandle:
        """A handle on an existing run (no request is made)."""
        return RunHandle(self, run_id)

    async def get_run(self, run_id: str) -> RunState:
        return RunState.model_validate(await self.call("run.get", {"run_id": run_id}))

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 100,
        since: datetime | str | None = None,
        scheduled: bool = False,
    ) -> list[RunSummary]:
        """Runs newest first by creation time; ``since``: created at or after (RFC 3339);
        ``scheduled=True``: the runs waiting for their ``run_at``, soonest first."""
        body = {
            "workflow": workflow,
            "status": status,
            "limit": limit,
            "since": since_text(since),
            "scheduled": scheduled,
        }
        rows = await self.call("run.list", body)
        return [RunSummary(**r) for r in rows]

    async def delete_run(self, run_id: str, *, force: bool = False) -> None:
        """Delete a finished run; ``force`` cancels a running one first (waits up to 10 s)."""
        timeout = max(self.timeout_s, FORCE_DELETE_TIMEOUT_S) if force else None
        await self.call("run.delete", {"run_id": run_id, "force": force}, timeout_s=timeout)

    async def cancel(self, run_id: str, reason: str | None = None) -> bool:
        out = await self.call("run.cancel", {"run_id": run_id, "reason": reason})
        return bool(out.get("cancelled"))

    async def send_signal(self, run_id: str, name: str, data: Any = None) -> None:
        await self.call("run.signal", {"run_id": run_id, "name": name, "data": data})

    async def publish_event(self, name: str, data: Any = None) -> int:
        out = await self.call("event.publish", {"name": name, "data": data})
        return int(out["seq"])

    async def approve(self, token: str, data: Any = None) -> None:
        await self.call("approval.approve", {"token": token, "data": data})

    async def reject(self, token: str, reason: str | None = None) -> None:
        await self.call("approval.reject", {"token": token, "reason": reason})

    async def run_logs(self, run_id: str) -> dict[str, StepLog]:
        """What the run's handlers logged through ``ctx.logger``: step id (``step.item``
        for a map instance) -> its last lines, bounded per step (``dagnats.protocol.logs``)."""
        await self.get_run(run_id)  # a clear RunNotFoundError for an unknown id
        kv = await open_bucket(self.js, protocol.KV_LOGS)
        return {} if kv is None else await read_run_logs(kv, run_id)

    # --- redrive and bulk (run ids may be given as an unambiguous prefix of 8+ characters) ---

    async def resolve_run_id(self, ref: str) -> str:
        """The whole id of the run that ``ref`` (an id or a prefix of 8+ characters) names."""
        return await self._redrive.resolve_run_id(ref)

    async def last_run_id(self, workflow: str | None = None) -> str:
        """The id of the newest run (of ``workflow``) by creation time."""
        return await self._redrive.last_run_id(workflow)

    async def retry_run(self, run_id: str, *, reason: str | None = None) -> RunHandle:
        """Resume a failed or cancelled run in place from its failed steps; completed steps
        keep their outputs and do not run again. Returns once the engine has applied it."""
        return RunHandle(self, await self._redrive.retry_run(run_id, reason), known=True)

    async def rerun(self, run_id: str, *, idempotency_key: str | None = None) -> RunHandle:
        """A new run of the same workflow revision with the same input (``rerun_of`` links it)."""
        out = await self._redrive.rerun(run_id, idempotency_key)
        return RunHandle(self, out["run_id"], workflow=out.get("workflow"), known=True)

    async def start_many(
        self,
        workflow: Any,
        inputs: Sequence[Any],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        revision: int | None = None,
    ) -> list[StartResult]:
        """Start one run per input (at most 1000 per call); one result per input, in order.

        ``workflow`` is a registered workflow's name, or a ``Workflow`` (registered first,
        and its revision started)."""
        if not isinstance(workflow, str):
            info = await self.register(workflow)
            workflow, revision = info.name, revision if revision is not None else info.revision
        return await self._redrive.start_many(workflow, inputs, idempotency_keys, revision)

    async def cancel_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        run_ids: Sequence[str] | None = None,
        limit: int = MAX_BATCH,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> CancelResult:
        """Cancel unfinished runs by ``workflow`` / ``status`` / ``run_ids`` (<= 1000)."""
        body = {
            "workflow": workflow,
            "status": status,
            "run_ids": list(run_ids) if run_ids is not None else None,
            "limit": limit,
            "dry_run": dry_run,
            "reason": reason,
        }
        return await self._redrive.cancel_runs(body)

    async def list_dead_letters(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (of one run, by id or prefix), at most ``limit``."""
        return await self._redrive.list_dead_letters(run_id, limit)

    async def replay_dead_letter(
        self, seq: int | None = None, *, run_id: str | None = None
    ) -> RunHandle:
        """Run a dead-lettered step again (by ``seq``, or every letter of ``run_id``): its run
        resumes, and the letters are removed so none is replayed twice."""
        return RunHandle(self, await self._redrive.replay_dead_letter(seq, run_id), known=True)

    # --- triggers (a dict in the DagNats JSON form is accepted wherever a TriggerDef is) ---

    async def create_trigger(self, trigger: TriggerDef | dict[str, Any]) -> str:
        """Create a trigger (checked here first, so a bad one fails without a request);
        returns its id (made when the definition has none)."""
        return await self._triggers.create(trigger)

    async def list_triggers(self, workflow: str | None = None) -> list[TriggerDef]:
        return await self._triggers.list_for(workflow)

    async def get_trigger(self, trigger_id: str) -> TriggerDef:
        return await self._triggers.get(trigger_id)

    async def enable_trigger(self, trigger_id: str) -> None:
        await self._triggers.enable(trigger_id)

    async def disable_trigger(self, trigger_id: str) -> None:
        await self._triggers.disable(trigger_id)

    async def delete_trigger(self, trigger_id: str) -> None:
        await self._triggers.delete(trigger_id)

    async def fire_trigger(self, trigger_id: str, data: Any = None) -> RunHandle:
        """Fire now, by hand (``trigger: "manual"`` in the envelope; no debounce)."""
        out = await self._triggers.fire(trigger_id, data)
        return RunHandle(self, out["run_id"], workflow=out.get("workflow"), known=True)

    async def trigger_history(self, trigger_id: str) -> list[dict[str, Any]]:
        """The trigger's recent fires, newest first (``ts``, ``kind``, ``run_id``, ``minute``)."""
        return await self._triggers.history(trigger_id)
