"""The dead-letter queue (stream ``DEAD_LETTERS``, subjects ``dead.<run_id>.<step_id>``).

Read in one batched direct get, fetched and removed by stream sequence: what the API's
``dlq.list`` and ``dlq.replay`` are made of. A replayed letter is deleted from the stream,
so a replay is done once however often it is asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dagnats import protocol
from dagnats._nats.types import JetStreamContext, NatsClient, NotFoundError
from dagnats.errors import ApiError
from dagnats.protocol.messages import DeadLetterMessage

READ_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """One dead letter and where it sits in the stream."""

    seq: int
    """Its stream sequence: what ``dlq replay SEQ`` names."""
    body: DeadLetterMessage
    stored_at: str | None
    """When the stream stored it (RFC 3339), for letters without their own ``ts``."""


def _parse(data: bytes, seq: int, stored_at: str | None) -> StoredLetter:
    try:
        body = DeadLetterMessage.model_validate_json(data)
    except ValueError:
        body = DeadLetterMessage()
    return StoredLetter(seq=seq, body=body, stored_at=stored_at)


async def read_dead_letters(
    nc: NatsClient, *, run_id: str | None, limit: int, timeout_s: float = READ_TIMEOUT_S
) -> tuple[list[StoredLetter], bool]:
    """The oldest ``limit`` dead letters (of ``run_id``), and whether more exist.

    One batched direct get (``next_by_subj`` with a wildcard), bounded by ``limit + 1``.
    """
    subject = protocol.dead_letter_subject(run_id, ">") if run_id else "dead.>"
    request = {"seq": 1, "next_by_subj": subject, "batch": limit + 1}
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[StoredLetter] = []
    more = False
    try:
        await nc.publish(
            f"$JS.API.DIRECT.GET.{protocol.DLQ_STREAM}", json.dumps(request).encode(), reply=inbox
        )
        while True:
            try:
                msg = await sub.next_msg(timeout=timeout_s)
            except TimeoutError as exc:
                raise ApiError(
                    f"reading {protocol.DLQ_STREAM} timed out (does the stream exist on "
                    "this NATS?)",
                    code=503,
                ) from exc
            hdrs = msg.headers or {}
            status = hdrs.get("Status")
            if status is not None:  # 204: end of the batch; 404: nothing (more) there
                if status not in ("204", "404"):
                    desc = hdrs.get("Description", "")
                    raise ApiError(
                        f"reading {protocol.DLQ_STREAM} failed: {status} {desc}".strip(), code=503
                    )
                break
            if len(out) == limit:
                more = True
                continue
            seq = int(hdrs.get("Nats-Sequence", "0"))
            out.append(_parse(msg.data, seq, hdrs.get("Nats-Time-Stamp")))
    finally:
        await sub.unsubscribe()
    return out, more


async def get_dead_letter(js: JetStreamContext, seq: int) -> StoredLetter | None:
    """Dead letter ``seq``, or ``None`` when it is gone (replayed, expired, never there)."""
    try:
        raw = await js.get_msg(protocol.DLQ_STREAM, seq)
    except NotFoundError:
        return None
    if not (raw.subject or "").startswith("dead."):
        return None
    stored = raw.time.isoformat() if raw.time is not None else None
    return _parse(raw.data or b"", seq, stored)


async def delete_dead_letter(js: JetStreamContext, seq: int) -> bool:
    """Remove dead letter ``seq``; False when it was already gone."""
    try:
        return bool(await js.delete_msg(protocol.DLQ_STREAM, seq))
    except NotFoundError:
        return False
