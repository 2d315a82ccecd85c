"""Worker loss: a task delivered ``max_deliver`` times without an answer.

The server announces it with a MAX_DELIVERIES advisory (stream sequence, no body). The task
message stays in the work-queue stream, so we read it, tell the run (``step.worker_lost``,
a failed attempt that the retry policy then handles) and delete it.
"""

from __future__ import annotations

import contextlib
import json
import logging

from dagnats import protocol
from dagnats._nats.consumers import ConsumerLoop
from dagnats._nats.history import stream_message
from dagnats._nats.publish import append_event
from dagnats._nats.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    Msg,
    NatsClient,
)
from dagnats.protocol import events as ev

log = logging.getLogger(__name__)

ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{protocol.TASK_STREAM}.*"
ADVISORY_CONSUMER = "dagnats-advisories"


class AdvisoryWatcher(ConsumerLoop):
    """Reads the advisories from the ``ADVISORIES`` stream, so none is missed while no engine
    runs (a core subscription would drop them)."""

    def __init__(self, nc: NatsClient) -> None:
        super().__init__(
            nc,
            protocol.ADVISORY_STREAM,
            ConsumerConfig(
                durable_name=ADVISORY_CONSUMER,
                filter_subject=ADVISORY,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30.0,
                max_deliver=-1,  # a lost worker must always be told: never drop one
            ),
            max_inflight=64,
        )
        self.lost = 0

    async def handle(self, msg: Msg) -> None:
        try:
            await self._on(msg)
            await msg.ack()
        except Exception as exc:  # noqa: BLE001 - any failure: nak and retry later
            log.warning("worker-loss advisory not handled yet (%s); retrying", exc)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)

    async def _on(self, msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            deliveries = int(advisory.get("deliveries", 0))
            raw = await stream_message(self.js, protocol.TASK_STREAM, seq)
            if raw is None:
                return  # already handled: the task message was deleted after its loss was told
            task = protocol.TaskMessage.model_validate_json(raw or b"{}")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed max-deliveries advisory: %s", exc)
            return
        event, dedup_id = ev.worker_lost(task, deliveries)
        await append_event(self.js, event, dedup_id)
        try:
            await self.js.delete_msg(protocol.TASK_STREAM, seq)
        except Exception as exc:  # noqa: BLE001 - another engine may have removed it first
            log.debug("task message %d already gone: %s", seq, exc)
        self.lost += 1
        log.warning("run %s step %s: %s", task.run_id, task.step_id, event.data["error"])
