"""Event correlation for ``wait_for_event`` steps (EVENTS stream + ``event_waiters`` KV).

A waiter is registered under ``<hex(event)>.<run_id>.<step_id>`` with the field values an
event must carry. Each published event is matched against the waiters for its name; a
waiter that registers shortly after its event still matches, because registration looks
back ``lookback`` into the stream. The match is published to the run's history with a dedup
id per waiter, so two matching events (or two correlators) cannot complete a step twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

from dagnats import protocol
from dagnats._nats.consumers import ConsumerLoop
from dagnats._nats.kvscan import scan
from dagnats._nats.publish import append_event
from dagnats._nats.types import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValue, Msg, NatsClient
from dagnats.dag.definition.conditions import as_match_text
from dagnats.dag.machine.actions import RegisterWaiter
from dagnats.protocol import events as ev
from dagnats.protocol import keys
from dagnats.protocol.messages import EventWaiter

log = logging.getLogger(__name__)

CORRELATOR_CONSUMER = "dagnats-correlator"
MAX_WAITERS_PER_EVENT = 10_000
MAX_LOOKBACK_EVENTS = 1000


def field(payload: Any, path: str) -> Any:
    cur = payload
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def matches(match: dict[str, Any], payload: Any, as_text: bool = False) -> bool:
    """Every ``match`` path of the payload equals its value (as strings for Go's form)."""
    if as_text:
        return all(as_match_text(field(payload, p)) == want for p, want in match.items())
    return all(field(payload, path) == want for path, want in match.items())


def decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


class Correlator(ConsumerLoop):
    def __init__(self, nc: NatsClient, waiters: KeyValue) -> None:
        super().__init__(
            nc,
            protocol.EVENT_STREAM,
            ConsumerConfig(
                durable_name=CORRELATOR_CONSUMER,
                filter_subject="event.>",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=30.0,
                max_deliver=5,
            ),
            max_inflight=64,
        )
        self.waiters = waiters
        self.matched = 0

    async def handle(self, msg: Msg) -> None:
        try:
            await self.on_event(msg.subject.removeprefix("event."), decode(msg.data))
            await msg.ack()
        except Exception as exc:  # noqa: BLE001 - any failure: nak and retry, never lose the event
            log.warning("correlating %s failed, retrying: %s", msg.subject, exc)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)

    async def on_event(self, name: str, payload: Any) -> None:
        # Only this event's waiters, values included, in one server-filtered pass (a scan
        # failure raises: the event is given back and correlated again).
        entries = await scan(self.waiters, keys.waiters_of(name), limit=MAX_WAITERS_PER_EVENT)
        for entry in entries:
            if not entry.value:
                continue
            try:
                waiter = EventWaiter.model_validate_json(entry.value)
            except ValueError:
                log.warning("ignoring a malformed waiter %s", entry.key)
                continue
            if matches(waiter.match, payload, waiter.as_text):
                await self._matched(waiter.run_id, waiter.step_id, name, payload)

    async def _matched(self, run_id: str, step_id: str, name: str, payload: Any) -> None:
        await append_event(self.js, *ev.wait_matched(run_id, step_id, name, payload))
        self.matched += 1

    async def lookback(self, w: RegisterWaiter) -> None:
        """Match events published up to ``lookback`` before the waiter was registered."""
        if w.lookback_ns <= 0:
            return
        start = w.registered_at - timedelta(microseconds=w.lookback_ns / 1000)
        sub = await self.js.pull_subscribe(
            protocol.event_subject(w.event),
            stream=protocol.EVENT_STREAM,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=start,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=10.0,
            ),
        )
        try:
            info = await sub.consumer_info()
            pending = min(int(info.num_pending or 0), MAX_LOOKBACK_EVENTS)
            while pending > 0:
                msgs = await sub.fetch(batch=min(pending, 256), timeout=2.0)
                pending -= len(msgs)
                for m in msgs:
                    payload = decode(m.data)
                    if matches(w.match, payload, w.as_text):
                        await self._matched(w.run_id, w.step_id, w.event, payload)
                        return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
