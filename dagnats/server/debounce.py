"""Debounced triggers: starts held in KV, released by timers on ``TIMERS``.

Each event of a debounced trigger replaces the held start of its key value (bucket
``trigger_debounce``, by compare-and-swap: a newer ``generation``) and publishes a timer on
``debounce.<trigger id>`` due at ``min(last + period, first + timeout)``. The trigger
services share one durable consumer on those timers, so one of them handles each; it naks
a timer until it is due, drops a timer whose generation is stale (a newer timer covers the
hold), and otherwise starts the run with the newest data, then deletes the hold (only if
unchanged: an event that came meanwhile keeps its hold and its own timer).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.consumers import ConsumerLoop
from dagnats._nats.publish import msg_id
from dagnats._nats.types import AckPolicy, ConsumerConfig, DeliverPolicy, Msg, NatsClient
from dagnats.dag.definition.conditions import lookup
from dagnats.dag.definition.triggers import TriggerDef
from dagnats.errors import ApiError, DagnatsError
from dagnats.protocol import dedup, keys
from dagnats.protocol.control import DebounceHold, DebounceTimer
from dagnats.server.trigger_ops import TriggerOps

log = logging.getLogger(__name__)

MAX_NAK_DELAY_S = 3600.0
MAX_CAS_TRIES = 10


class Debouncer(ConsumerLoop):
    def __init__(
        self, nc: NatsClient, triggers: TriggerOps, *, now: Callable[[], datetime]
    ) -> None:
        super().__init__(
            nc,
            protocol.TIMER_STREAM,
            ConsumerConfig(
                durable_name=protocol.DEBOUNCE_CONSUMER,
                filter_subject=protocol.DEBOUNCE_TIMER_FILTER,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30.0,
                max_deliver=-1,
                max_ack_pending=-1,  # held timers wait out nak delays: no cap
            ),
            max_inflight=1000,
            concurrent=True,
        )
        self.triggers = triggers
        self.now = now
        self._kv: Any = None
        self.released = 0

    async def start(self) -> None:
        self._kv = await self.js.key_value(protocol.KV_DEBOUNCE)
        await super().start()

    async def hold(self, trigger: TriggerDef, kind: str, data: Any) -> DebounceHold:
        """Hold a start (or replace the held one of the same key value) and arm its timer."""
        spec = trigger.debounce
        if spec is None:
            raise ValueError(f"trigger {trigger.id!r} is not debounced")
        key_value = lookup(f"data.{spec.key}", {"data": data}) if spec.key else None
        key_hash = keys.hashed_token(key_value)
        kv_key = keys.debounce_key(trigger.id, key_hash)
        now = self.now()
        for _ in range(MAX_CAS_TRIES):
            raw, revision = await cas.read(self._kv, kv_key)
            old = None if raw is None else DebounceHold.model_validate_json(raw)
            hold = DebounceHold(
                trigger_id=trigger.id,
                key_hash=key_hash,
                kind=kind,
                data=data,
                first_at=old.first_at if old else now,
                last_at=now,
                generation=(old.generation + 1) if old else 1,
                period_ns=spec.period,
                timeout_ns=spec.timeout,
            )
            if await cas.write(self._kv, kv_key, hold.encode(), revision) is not None:
                await self._arm(hold)
                return hold
        raise ApiError(f"debounce of trigger {trigger.id!r} is contended; retry", code=409)

    async def _arm(self, hold: DebounceHold) -> None:
        timer = DebounceTimer(
            trigger_id=hold.trigger_id,
            key_hash=hold.key_hash,
            generation=hold.generation,
            fire_at=hold.due_at(),
        )
        timer_id = dedup.debounce_timer_id(
            hold.trigger_id, hold.key_hash, int(hold.first_at.timestamp() * 1e6) + hold.generation
        )
        await self.js.publish(
            protocol.debounce_timer_subject(hold.trigger_id),
            timer.encode(),
            headers=msg_id(timer_id),
        )

    async def handle(self, msg: Msg) -> None:
        try:
            timer = DebounceTimer.model_validate_json(msg.data)
            remaining = (timer.fire_at - self.now()).total_seconds()
            if remaining > 0.001:
                await msg.nak(delay=min(remaining, MAX_NAK_DELAY_S))
                return
            await self._release(timer)
            await msg.ack()
        except ValueError as exc:
            log.error("dropping a malformed debounce timer on %s: %s", msg.subject, exc)
            with contextlib.suppress(Exception):
                await msg.term()
        except Exception as exc:  # noqa: BLE001 - NATS trouble or a failed start: retry soon
            log.warning("debounce timer on %s not released, retrying: %s", msg.subject, exc)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)

    async def _release(self, timer: DebounceTimer) -> None:
        kv_key = keys.debounce_key(timer.trigger_id, timer.key_hash)
        raw, revision = await cas.read(self._kv, kv_key)
        if raw is None:
            return  # released already
        hold = DebounceHold.model_validate_json(raw)
        if hold.generation != timer.generation:
            return  # a newer event re-armed the hold: its timer releases it
        trigger = self.triggers.index.get(timer.trigger_id)
        if trigger is not None and trigger.enabled:
            token = f"{hold.key_hash[:12]}.{int(hold.first_at.timestamp() * 1e6)}.{hold.generation}"
            try:
                await self.triggers.start(trigger, hold.kind, hold.data, token=token)
                self.released += 1
            except DagnatsError as exc:  # e.g. the workflow was deleted: the hold is dropped
                log.error("debounced start of trigger %s failed: %s", trigger.id, exc)
        with contextlib.suppress(Exception):
            await self._kv.delete(kv_key, last=revision)
