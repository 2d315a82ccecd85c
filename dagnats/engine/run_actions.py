"""Actions about a run as a whole: admission, its end, child runs, approvals, clean-up.

A collaborator of :class:`dagnats.engine.executor.Executor`, which builds one and hands it
the actions about whole runs; split out because these run once or twice per run, while the
executor's hot path (tasks, timers, records) runs per event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.kvscan import get_entry
from dagnats._nats.publish import append_event
from dagnats._nats.stores import DefinitionStore
from dagnats._nats.types import JetStreamContext, KeyValue, NatsClient
from dagnats.dag.machine.actions import AdmitRun, FinishRun, RequestApproval, StartChildRun
from dagnats.engine.limits import MAX_WAITING_RUNS, admit_run
from dagnats.protocol import clock, keys
from dagnats.protocol import events as ev
from dagnats.protocol.messages import ApprovalRecord

log = logging.getLogger(__name__)


class RunActions:
    """Admission, a run's end, child runs and approvals; owns the background clean-ups."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        defs: DefinitionStore,
        kv: dict[str, KeyValue],
    ) -> None:
        self.nc = nc
        self.js = js
        self.defs = defs
        self.kv = kv
        self._background: set[asyncio.Task[None]] = set()
        # The clean-up of each ended run still going: a retry of the run waits for it, so a
        # purge of the ended run's timers never removes the ones the retry arms.
        self._cleanups: dict[str, asyncio.Task[None]] = {}

    async def admit(self, a: AdmitRun) -> None:
        due_s = None
        if a.arrived_at is not None:
            due_s = a.arrived_at.timestamp() + a.priority_offset_s
        verdict = await admit_run(
            self.kv[protocol.KV_CONCURRENCY], a.workflow, a.run_id, a.max_runs, due_s=due_s
        )
        if verdict is True:
            await self.admitted(a.run_id)
        elif verdict is None:
            reason = (
                f"the queue of workflow '{a.workflow}' is full "
                f"({MAX_WAITING_RUNS} runs waiting for max_runs)"
            )
            await append_event(self.js, *ev.cancel_requested(a.run_id, reason, by="queue"))

    async def admitted(self, run_id: str) -> None:
        ack = await append_event(self.js, *ev.workflow_admitted(run_id))
        if ack.duplicate:
            # Admitted before within the dedup window: a retried run waiting for its slot
            # again (or a repeat after a crash, which the machine ignores): a fresh id.
            await append_event(self.js, *ev.workflow_admitted(run_id, secrets.token_hex(6)))

    async def finish(self, a: FinishRun) -> None:
        if a.status != "completed":
            # Handlers still running for this run are wasted work: workers listening on
            # this subject cancel them (best effort, core pub/sub).
            # The body says the status and, after a retry, which retry ended.
            note = a.status if not a.retries else f"{a.status} {a.retries}"
            await self.nc.publish(protocol.cancel_subject(a.run_id), note.encode())
        if a.parent_run_id and a.parent_step_id:
            if a.status == "completed":
                stamped = ev.child_completed(a.parent_run_id, a.parent_step_id, a.run_id, a.output)
            else:
                error = (a.error or {}).get("message", f"child run {a.status}")
                stamped = ev.child_failed(
                    a.parent_run_id, a.parent_step_id, a.run_id, a.status, error
                )
            await append_event(self.js, *stamped)
        for child in a.child_steps:
            reason = f"parent run {a.run_id} {a.status}"
            await append_event(self.js, *ev.cancel_requested(child, reason, by="parent"))
        if a.checkpoints or a.timers:
            await self._cleanup(a.run_id, checkpoints=a.checkpoints, timers=a.timers)

    async def _cleanup(self, run_id: str, *, checkpoints: bool, timers: bool) -> None:
        """Drop the run's checkpoints and its pending timers (sleeps, backstops, deferred
        dispatches), each only if it could have any: purges by subject, off the critical
        path (each is a JetStream API call and a scan of the stream by the server)."""
        task = asyncio.create_task(self._purge(run_id, checkpoints=checkpoints, timers=timers))
        self._background.add(task)
        self._cleanups[run_id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._background.discard(t)
            if self._cleanups.get(run_id) is t:
                del self._cleanups[run_id]

        task.add_done_callback(done)

    async def cleaned(self, run_id: str, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for the clean-up of ended run ``run_id``, if one is going."""
        task = self._cleanups.get(run_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout_s)

    async def _purge(self, run_id: str, *, checkpoints: bool, timers: bool) -> None:
        try:
            if checkpoints:
                await self.js.purge_stream(
                    f"KV_{protocol.KV_CHECKPOINTS}",
                    subject=f"$KV.{protocol.KV_CHECKPOINTS}.{run_id}.>",
                )
        except Exception as exc:  # noqa: BLE001 - best effort: checkpoints are a cache of progress
            log.debug("could not purge checkpoints of run %s: %s", run_id, exc)
        if not timers:
            return  # a purge makes the server scan the stream: skip it when it can't help
        try:
            # Timers of an ended run would fire as stale no-ops (or, for deferred dispatches,
            # take a concurrency slot); removing them keeps the timer stream small.
            await self.js.purge_stream(protocol.TIMER_STREAM, subject=f"timer.*.{run_id}")
        except Exception as exc:  # noqa: BLE001 - best effort: a stale timer fires as a no-op
            log.debug("could not purge timers of run %s: %s", run_id, exc)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for background clean-ups (bounded)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    async def start_child(self, a: StartChildRun) -> None:
        found = await self.defs.get(a.workflow, a.revision)
        if found is None:
            error = f"sub-workflow '{a.workflow}' is not registered"
            await append_event(
                self.js, *ev.child_failed(a.run_id, a.step_id, a.child_run_id, "failed", error)
            )
            return
        _defn, revision = found
        parent = None if a.detach else {"run_id": a.run_id, "step_id": a.step_id, "depth": a.depth}
        await append_event(
            self.js,
            *ev.child_started(
                a.child_run_id, a.workflow, revision, a.input, parent=parent, depth=a.depth
            ),
        )

    async def request_approval(self, a: RequestApproval) -> None:
        """Mint the step's single-use token once, however often this action is executed.

        ``step.<run>.<step>.<deadline>`` is created first (create-only) and names the token,
        so a repeat after a crash announces the same token instead of minting another.
        """
        kv = self.kv[protocol.KV_APPROVALS]
        ttl_s = max(1, math.ceil((a.expires_at - clock.now()).total_seconds()) + 60)
        ref = keys.approval_ref_key(a.run_id, a.step_id, a.expires_at)
        token = secrets.token_hex(32)  # 256 bits
        if await cas.write(kv, ref, token.encode(), 0, ttl_s=ttl_s) is None:
            entry = await get_entry(kv, ref)  # minted by an earlier execution: announce it
            if entry is not None and entry.value:
                token = entry.value.decode()
        body = ApprovalRecord(
            run_id=a.run_id, step_id=a.step_id, expires_at=a.expires_at, state="open"
        ).encode()
        # A lost create: the earlier execution made it (and it may be used since): keep it.
        await cas.write(kv, token, body, 0, ttl_s=ttl_s)
        request = ev.approval_request(
            a.run_id,
            a.step_id,
            token,
            a.expires_at,
            subject=a.subject,
            description=a.description,
            metadata=a.metadata,
        )
        await append_event(
            self.js,
            *ev.approval_requested(a.run_id, a.step_id, token, a.expires_at, a.message, request),
        )
        if a.subject is not None:
            # Core NATS, as Go does: a bot subscribed to the subject picks the request up.
            await self.nc.publish(a.subject, json.dumps(request).encode())
