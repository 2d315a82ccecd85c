"""Durations: one rule, decided by where a value comes from.

- **In Python** (builder keyword arguments, ``RetryPolicy(...)``, ``Workflow(timeout=...)``,
  ``@worker.task(timeout=...)``, ``RetryAfter``, ``ctx.wait_for_signal``) a number is
  **seconds** (``timeout=30`` is thirty seconds, ``0.25`` a quarter of one), a
  ``datetime.timedelta`` works and so does a Go-style string (``"1h30m"``): see
  :data:`DurationLike` and :func:`to_ns`.
- **In JSON** (a definition loaded from a dict, JSON text or a file, and
  ``Model.model_validate`` of such data) an integer is **nanoseconds**, Go's form, so files
  written by the Go DagNats load unchanged: see :func:`parse_duration`.

How a model field tells the two apart: the :data:`Duration` validator reads ints as
nanoseconds unless the pydantic *validation context* is :data:`PYTHON_CONTEXT`. The
definition models' ``__init__`` (``RetryPolicy(...)``) and the builder validate with that
context; ``load_definition`` and plain ``model_validate`` do not, so data keeps Go's meaning.
A context rather than a converting constructor because it reaches nested models in one
validation (``wf.step(retry={"initial_delay": 1})`` is one second too) and because the
models keep a single field type (``int`` nanoseconds) for both sources.

Internally a duration is an ``int`` of nanoseconds (exact, no float drift); definitions
always write strings back (``format_duration``), so a round trip keeps the meaning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import (
    BeforeValidator,
    PlainSerializer,
    SerializationInfo,
    ValidationInfo,
    WithJsonSchema,
)

DurationLike = float | int | str | timedelta
"""A duration given in Python: ``"30s"``/``"1h30m"``, a ``timedelta``, or seconds."""

_CONTEXT_KEY = "dagnats.duration_numbers"
PYTHON_CONTEXT: Final[Mapping[str, str]] = {_CONTEXT_KEY: "seconds"}
"""Validation context under which a :data:`Duration` field reads numbers as seconds."""
_WRITE_KEY = "dagnats.duration_form"
NANOSECONDS_CONTEXT: Final[Mapping[str, str]] = {_WRITE_KEY: "ns"}
"""Serialization context under which a :data:`Duration` field writes integer nanoseconds
(Go's form, ``to_dict(format="go")``) instead of a string."""

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS: dict[str, int] = {
    "ns": NS,
    "us": US,
    "µs": US,
    "μs": US,
    "ms": MS,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_NS = 2**63 - 1  # Go's time.Duration range; anything larger is a mistake


class DurationError(ValueError):
    """A duration string or number that cannot be understood."""


def parse_duration(value: object) -> int:
    """Parse a Go-style duration string, integer nanoseconds or ``timedelta`` to nanoseconds."""
    if isinstance(value, bool):
        raise DurationError("a duration must be a string like '30s' or integer nanoseconds")
    if isinstance(value, int):
        ns = value
    elif isinstance(value, float) and value.is_integer():
        ns = int(value)
    elif isinstance(value, timedelta):
        ns = (value.days * 86_400 + value.seconds) * SECOND + value.microseconds * US
    elif isinstance(value, str):
        ns = _parse_text(value)
    else:
        raise DurationError(
            f"a duration must be a string like '30s' or integer nanoseconds, got "
            f"{type(value).__name__}"
        )
    if ns < 0:
        raise DurationError(f"duration {value!r} is negative")
    if ns > _MAX_NS:
        raise DurationError(f"duration {value!r} is too large")
    return ns


def _parse_text(text: str) -> int:
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise DurationError("empty duration string")
        return 0
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
        if not s:  # a lone sign would otherwise parse as 0
            raise DurationError(f"invalid duration {text!r}: a sign needs a number and a unit")
    pos = 0
    total = 0.0
    exact = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise DurationError(
                f"invalid duration {text!r}: use a number and a unit (ns, us, ms, s, m, h), "
                "e.g. '500ms' or '1h30m'"
            )
        number, unit = m.group(1), m.group(2)
        if "." in number:
            total += float(number) * _UNITS[unit]
        else:
            exact += int(number) * _UNITS[unit]
        pos = m.end()
    return sign * (exact + round(total))


def format_duration(ns: int) -> str:
    """Format nanoseconds as a compact Go-style string that ``parse_duration`` reads back."""
    if ns < 0:
        raise DurationError(f"duration {ns} is negative")
    if ns == 0:
        return "0s"
    out: list[str] = []
    rest = ns
    for unit, size in (("h", HOUR), ("m", MINUTE), ("s", SECOND), ("ms", MS), ("us", US)):
        q, rest = divmod(rest, size)
        if q:
            out.append(f"{q}{unit}")
    if rest:
        out.append(f"{rest}ns")
    return "".join(out)


def to_seconds(ns: int) -> float:
    return ns / SECOND


def _python_ns(value: object) -> int:
    """Python's meaning: a number is seconds; strings and timedeltas as in parse_duration."""
    if isinstance(value, bool):
        raise DurationError(
            f"a duration must be a string like '30s', a timedelta or seconds, got {value!r}"
        )
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise DurationError(f"duration {value!r} is not a finite number of seconds")
        if value < 0:
            raise DurationError(f"duration {value!r} is negative")
        ns = value * SECOND if isinstance(value, int) else round(value * SECOND)
        if ns > _MAX_NS:
            raise DurationError(f"duration {value!r} is too large")
        return ns
    return parse_duration(value)


def to_ns(value: DurationLike, what: str = "duration") -> int:
    """Nanoseconds from a duration given in Python (a number is seconds).

    ``what`` names the argument in the error (``"timeout of task 'x'"``).
    """
    try:
        return _python_ns(value)
    except DurationError as exc:
        raise DurationError(f"invalid {what}: {exc}") from None


def _serialize(ns: int, info: SerializationInfo) -> int | str:
    context = info.context
    if isinstance(context, Mapping) and context.get(_WRITE_KEY) == "ns":
        return ns
    return format_duration(ns)


def _validate(value: Any, info: ValidationInfo) -> int:
    context = info.context
    if isinstance(context, Mapping) and context.get(_CONTEXT_KEY) == "seconds":
        return _python_ns(value)
    return parse_duration(value)


Duration = Annotated[
    int,
    BeforeValidator(_validate),
    PlainSerializer(_serialize, return_type=int | str, when_used="always"),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^0$",
                    "description": "Go-style duration, e.g. '250ms', '30s', '1h30m'",
                },
                {"type": "integer", "minimum": 0, "description": "nanoseconds"},
            ]
        }
    ),
]
"""A duration field: holds ``int`` ns, writes a string (integer ns under
:data:`NANOSECONDS_CONTEXT`); reads numbers as ns, or as seconds under :data:`PYTHON_CONTEXT`."""


def parse_long_duration(value: object) -> int:
    """Like :func:`parse_duration`, and a text may start with days: ``"30d"``, ``"1.5d"``,
    ``"7d12h"`` (retention periods; Go's format stops at hours)."""
    if isinstance(value, str) and "d" in value:
        days, _, rest = value.strip().partition("d")
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", days):
            raise DurationError(f"invalid duration {value!r}: days are a number, e.g. '30d'")
        whole = int(days) * DAY if days.isdigit() else round(float(days) * DAY)
        ns = whole + (parse_duration(rest) if rest else 0)
        if ns > _MAX_NS:
            raise DurationError(f"duration {value!r} is too large")
        return ns
    return parse_duration(value)


def _validate_long(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, str):
        return parse_long_duration(value)
    return _validate(value, info)


LongDuration = Annotated[
    int,
    BeforeValidator(_validate_long),
    PlainSerializer(_serialize, return_type=int | str, when_used="always"),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^([0-9]+(\.[0-9]+)?d)?(([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+)?$",
                    "description": "days and a Go-style duration, e.g. '30d', '7d12h', '36h'",
                },
                {"type": "integer", "minimum": 0, "description": "nanoseconds"},
            ]
        }
    ),
]
"""A :data:`Duration` whose text may start with days (``"30d"``)."""
