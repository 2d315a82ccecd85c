"""Go-style durations: ``"250ms"``, ``"1h30m"``, or integer nanoseconds.

Workflow JSON written by the Go DagNats uses integer nanoseconds; people write strings.
Both are accepted; a definition always writes strings back so files stay readable.
Internally a duration is an ``int`` of nanoseconds (exact, no float drift).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

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


def _validate(value: Any) -> int:
    return parse_duration(value)


Duration = Annotated[
    int,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="always"),
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
"""A duration field: accepts ``"1h30m"`` or nanoseconds, holds ``int`` ns, writes a string."""
