"""Worker loss: a task delivered ``max_deliver`` times without an answer.

The server announces it with a MAX_DELIVERIES advisory (stream sequence, no body). The task
message stays in the work-queue stream, so we read it, tell the run (``step.worker_lost``,
a failed attempt that the retry policy then handles) and delete it.
"""

from __future__ import annotations

import json
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from dagnats._nats.publish import msg_id
from dagnats.dag import events as ev
from dagnats.dag import wire
from dagnats.dag.events import Event

log = logging.getLogger(__name__)

ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{wire.TASK_STREAM}.*"


class AdvisoryWatcher:
    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self._sub: Subscription | None = None
        self.lost = 0

    async def start(self) -> None:
        # A queue group: with several engines, one of them handles each advisory.
        self._sub = await self.nc.subscribe(ADVISORY, queue="dagnats-engine", cb=self._on)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on(self, msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            deliveries = int(advisory.get("deliveries", 0))
            raw = await self.js.get_msg(wire.TASK_STREAM, seq)
            task = wire.TaskMessage.model_validate_json(raw.data or b"{}")
        except Exception as exc:
            log.warning("ignoring a max-deliveries advisory: %s", exc)
            return
        event = Event(
            type=ev.WORKER_LOST,
            run_id=task.run_id,
            step_id=task.step_id,
            attempt=task.attempt,
            iteration=task.iteration,
            item=task.item,
            data={
                "error": f"worker lost: task '{task.task}' was delivered {deliveries} times "
                "without an answer",
                "error_type": "WorkerLost",
                "retryable": True,
                "deliveries": deliveries,
            },
        )
        await self.js.publish(
            wire.history_subject(task.run_id),
            event.to_bytes(),
            headers=msg_id(f"{task.dedup_id}.lost"),
        )
        try:
            await self.js.delete_msg(wire.TASK_STREAM, seq)
        except Exception as exc:  # another engine may have removed it first
            log.debug("task message %d already gone: %s", seq, exc)
        self.lost += 1
        log.warning("run %s step %s: %s", task.run_id, task.step_id, event.data["error"])
