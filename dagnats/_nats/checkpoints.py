"""Step checkpoints in the ``checkpoints`` KV bucket (key ``<run_id>.<step_id>[.<item>]``).

Small functions over a ``KeyValue`` so the worker, the client and tools share one format:
the value is the JSON of what the handler stored.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from dagnats import protocol
from dagnats._nats.resources import MAX_MSG_BYTES
from dagnats._nats.types import JetStreamContext, KeyNotFoundError, KeyValue
from dagnats.protocol.keys import checkpoint_key

# A KV value is one message on the bucket's stream (max 1 MiB); leave room for headers.
MAX_VALUE_BYTES = MAX_MSG_BYTES - 4096


def encode_value(value: Any, what: str) -> bytes:
    """JSON bytes of ``value``; a clear error for what JSON cannot hold or what is too big."""
    try:
        raw = json.dumps(to_jsonable_python(value), separators=(",", ":")).encode()
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise TypeError(
            f"{what}: a value of type {type(value).__name__} cannot be stored as JSON: {exc}"
        ) from exc
    if len(raw) > MAX_VALUE_BYTES:
        raise ValueError(f"{what} is {len(raw)} bytes; the limit is {MAX_VALUE_BYTES} bytes")
    return raw


def decode_value(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


async def save_checkpoint(
    js: JetStreamContext,
    run_id: str,
    step_id: str,
    value: Any,
    *,
    item: int | None = None,
    kv: KeyValue | None = None,
) -> int:
    """Store ``value`` as the step's checkpoint; returns the KV revision."""
    bucket = kv or await js.key_value(protocol.KV_CHECKPOINTS)
    raw = encode_value(value, f"checkpoint of step {step_id!r}")
    return await bucket.put(checkpoint_key(run_id, step_id, item), raw)


async def get_checkpoint_raw(kv: KeyValue, key: str) -> bytes | None:
    """The stored bytes under ``key``, or ``None`` if there is none (or it was deleted)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value or None


async def load_checkpoint(
    js: JetStreamContext,
    run_id: str,
    step_id: str,
    *,
    item: int | None = None,
    kv: KeyValue | None = None,
) -> Any:
    """The step's last checkpoint (decoded JSON), or ``None``."""
    bucket = kv or await js.key_value(protocol.KV_CHECKPOINTS)
    raw = await get_checkpoint_raw(bucket, checkpoint_key(run_id, step_id, item))
    return None if raw is None else decode_value(raw)
