"""Fast JSON for the task message the engine writes for every step.

``TaskMessage`` (pydantic) stays the definition of the message and what readers validate
with; building one only to serialise it cost the engine ~10 us a step (construction and
validation of 19 fields), while msgspec writes the same JSON from the fields in ~1 us (the
same keys in the same order; a float's exponent may be spelt ``1e16`` for ``1e+16``).
Measured and kept out (issue 10): decoding events or task messages with msgspec and then
building the pydantic model without validation (``model_construct``) is slower than
pydantic's own ``model_validate_json``, and ``Event.to_bytes`` is already ~1.5 us.

A value msgspec would write differently from pydantic (bytes, or a type it does not know)
makes :func:`task_body` return ``None``: the caller then builds the model. Tests check that
both give the same JSON and that pydantic reads it back equal.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Unknown(TypeError):
    """A value msgspec cannot write as pydantic does: pydantic's path is taken."""


def _refuse(value: Any) -> Any:
    raise _Unknown(type(value).__name__)


_ENCODER = msgspec.json.Encoder(enc_hook=_refuse)

# The fields of ``TaskMessage`` in its declared order (pydantic writes them in that order).
TASK_FIELDS = (
    "run_id",
    "workflow",
    "step_id",
    "task",
    "attempt",
    "iteration",
    "item",
    "input",
    "timeout_ns",
    "idempotency_key",
    "dedup_id",
    "metadata",
    "capabilities",
    "budget_warning",
    "budget_final",
    "sticky",
    "control_root",
    "fallback",
    "run_retry",
)


def _plain(value: Any) -> bool:
    """Whether ``value`` holds no bytes (the one type both encoders know and write apart)."""
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return not isinstance(value, bytes | bytearray | memoryview)


def task_body(fields: dict[str, Any]) -> bytes | None:
    """A task message's JSON as ``TaskMessage(**fields).encode()`` writes it, ``None``
    fields left out (``None`` back: build the model instead)."""
    body = {k: fields[k] for k in TASK_FIELDS if fields.get(k) is not None}
    if not (_plain(body.get("input")) and _plain(body.get("metadata"))):
        return None
    try:
        return _ENCODER.encode(body)
    except (TypeError, OverflowError):
        return None
