"""HTTP request/respond: an HTTP trigger's request waits for its run's ``respond`` step.

The order matters: the call subscribes to the run's response subject (and to its terminal
announcement) *before* it publishes the start, so no answer can come before anyone listens.
Then it waits, bounded by the trigger's ``timeout_ms``, for the first of:

- the ``respond`` step's answer: its status, headers, content type and body;
- the run ending without an answer: failed or compensated -> 500
  ``{"error": "workflow_failed", "run_id"}``, cancelled -> 503, completed -> 500
  ``{"error": "workflow_no_response", "run_id"}``;
- the deadline: 504 ``{"error": "workflow_timeout", "run_id"}``, and the run goes on.

With an ``idempotency_header``, the first request with a value claims it in ``http_answers``
(by create) and stores its final answer there; a repeat gets that answer, or waits for the
first run's answer while it is still coming.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from dagnats import protocol
from dagnats._nats import cas
from dagnats._nats.payloads import Payloads
from dagnats._nats.tasks import stop_task
from dagnats._nats.types import KeyValue, Msg, NatsClient
from dagnats.dag.definition.triggers import TriggerDef
from dagnats.protocol import keys
from dagnats.protocol.ended import parse_ended
from dagnats.server.trigger_ops import TriggerOps

log = logging.getLogger(__name__)

RUN_ID_HEADER = "X-Dagnats-Run-Id"
MAX_CLAIM_TRIES = 5


@dataclass
class Answer:
    """What the HTTP layer sends back."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "body": base64.b64encode(self.body).decode(),
            "content_type": self.content_type,
            "headers": self.headers,
            "run_id": self.run_id,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Answer:
        return cls(
            status=int(rec["status"]),
            body=base64.b64decode(rec.get("body") or ""),
            content_type=rec.get("content_type") or "application/json",
            headers=dict(rec.get("headers") or {}),
            run_id=rec.get("run_id"),
        )


def _json_answer(status: int, body: dict[str, Any], run_id: str | None) -> Answer:
    return Answer(status=status, body=json.dumps(body).encode(), run_id=run_id)


def from_respond(raw: bytes, run_id: str) -> Answer:
    """The ``respond`` step's message: ``{status, headers, content_type, data}``."""
    msg = json.loads(raw)
    content_type = str(msg.get("content_type") or "application/json")
    data = msg.get("data")
    if "json" in content_type or not isinstance(data, str):
        body = json.dumps(data, default=str).encode()
    else:
        body = data.encode()
    headers = {str(k): str(v) for k, v in (msg.get("headers") or {}).items()}
    return Answer(int(msg.get("status") or 200), body, content_type, headers, run_id)


class HttpCalls:
    def __init__(self, nc: NatsClient, triggers: TriggerOps) -> None:
        self.nc = nc
        self.triggers = triggers
        self.payloads = Payloads(nc.jetstream())
        self._answers: KeyValue | None = None

    async def open(self) -> None:
        self._answers = await self.nc.jetstream().key_value(protocol.KV_HTTP_ANSWERS)

    @property
    def answers(self) -> KeyValue:
        if self._answers is None:
            raise RuntimeError("HttpCalls.open() was not awaited")
        return self._answers

    async def call(self, trigger: TriggerDef, data: dict[str, Any], idem: str | None) -> Answer:
        """Start the trigger's run with ``data`` and wait for its answer (see the module)."""
        spec = trigger.http
        if spec is None:
            raise ValueError(f"trigger {trigger.id!r} is not an HTTP trigger")
        timeout_s = spec.timeout_ms / 1000
        if idem is None:
            return await self._start_and_wait(trigger, data, protocol.new_run_id(), timeout_s)
        key = keys.http_answer_key(trigger.id, idem)
        for _ in range(MAX_CLAIM_TRIES):
            run_id = protocol.new_run_id()
            if await cas.write(self.answers, key, json.dumps({"run_id": run_id}).encode(), 0):
                answer = await self._start_and_wait(trigger, data, run_id, timeout_s)
                if answer.status != 504:  # the first run's answer, kept for repeats
                    with contextlib.suppress(Exception):
                        await self.answers.put(key, json.dumps(answer.to_record()).encode())
                return answer
            stored, _ = await cas.read_json(self.answers, key)
            if stored is None:
                continue  # released meanwhile: claim again
            if "status" in stored:
                return Answer.from_record(stored)
            return await self._wait_for(key, str(stored["run_id"]), timeout_s)
        return _json_answer(409, {"error": "idempotency_contended"}, None)

    async def _start_and_wait(
        self, trigger: TriggerDef, data: dict[str, Any], run_id: str, timeout_s: float
    ) -> Answer:
        responses = await self.nc.subscribe(protocol.respond_subject(run_id), max_msgs=1)
        done = await self.nc.subscribe(protocol.done_subject(run_id), max_msgs=1)
        try:
            await self.triggers.start(trigger, "http", data, run_id=run_id)
            return await self._first_answer(run_id, responses.next_msg, done.next_msg, timeout_s)
        finally:
            for sub in (responses, done):
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _wait_for(self, key: str, run_id: str, timeout_s: float) -> Answer:
        """A repeat while the first request waits: listen for the same run's answer (core
        pub/sub reaches every subscriber), or find it stored."""
        responses = await self.nc.subscribe(protocol.respond_subject(run_id), max_msgs=1)
        done = await self.nc.subscribe(protocol.done_subject(run_id), max_msgs=1)
        try:
            stored, _ = await cas.read_json(self.answers, key)
            if stored is not None and "status" in stored:
                return Answer.from_record(stored)
            answer = await self._first_answer(run_id, responses.next_msg, done.next_msg, timeout_s)
            stored, _ = await cas.read_json(self.answers, key)
            return Answer.from_record(stored) if stored and "status" in stored else answer
        finally:
            for sub in (responses, done):
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _first_answer(self, run_id: str, respond: Any, done: Any, timeout_s: float) -> Answer:
        got_respond = asyncio.ensure_future(respond(timeout=timeout_s))
        got_done = asyncio.ensure_future(done(timeout=timeout_s))
        try:
            finished, _ = await asyncio.wait(
                {got_respond, got_done}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if got_respond in finished and got_respond.exception() is None:
                return from_respond(_data(got_respond.result()), run_id)
            if got_done in finished and got_done.exception() is None:
                # The respond message, if any, was published before the end: give it a
                # moment to arrive (core messages of one publisher keep their order).
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    msg = await asyncio.wait_for(asyncio.shield(got_respond), 0.05)
                    return from_respond(_data(msg), run_id)
                ended = parse_ended(_data(got_done.result()), run_id)
                return _ended(ended.status, run_id)
            return _json_answer(504, {"error": "workflow_timeout", "run_id": run_id}, run_id)
        finally:
            for fut in (got_respond, got_done):
                await stop_task(fut)


def _data(msg: Msg) -> bytes:
    return bytes(msg.data)


def _ended(status: str, run_id: str) -> Answer:
    if status == "cancelled":
        return _json_answer(503, {"error": "workflow_cancelled", "run_id": run_id}, run_id)
    if status == "completed":
        return _json_answer(500, {"error": "workflow_no_response", "run_id": run_id}, run_id)
    return _json_answer(500, {"error": "workflow_failed", "run_id": run_id}, run_id)
