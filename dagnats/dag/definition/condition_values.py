"""Values for the condition language: dot paths into run data, comparisons, and Go's
object form of ``skip_if``. Re-exported by :mod:`dagnats.dag.definition.conditions`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_EXPR_LEN = 1024
MAX_DEPTH = 32
ROOTS: frozenset[str] = frozenset({"input", "run", "steps"})

_SEGMENT = r"[A-Za-z0-9_-]+"
_PATH_RE = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")


class ConditionError(ValueError):
    """A condition or path that cannot be parsed; the message names the position and token."""


# --- paths -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _split_path(path: str) -> tuple[str, ...]:
    if not _PATH_RE.match(path):
        raise ConditionError(
            f"invalid path {path!r}: use dot-separated keys or list indexes, e.g. 'input.order.id'"
        )
    return tuple(path.split("."))


def parse_path(path: str) -> tuple[str, ...]:
    """Split a dotted path into segments, raising :class:`ConditionError` if malformed."""
    if not isinstance(path, str):
        raise ConditionError(f"a path must be a string, got {type(path).__name__}")
    return _split_path(path)


def _step_of(segments: Sequence[str], steps: Mapping[str, Any]) -> tuple[Any, int] | None:
    """``steps.<id>...``: the step and where the rest starts. A step id may be dotted
    (``steps.order.quote.output``): the longest id that is a step wins."""
    for end in range(len(segments), 1, -1):
        sid = ".".join(segments[1:end])
        if sid in steps:
            return steps[sid], end
    return None


def _resolve(segments: Sequence[str], scope: Any) -> Any:
    value = scope
    if segments and segments[0] == "steps" and isinstance(scope, Mapping):
        steps = scope.get("steps")
        found = _step_of(segments, steps) if isinstance(steps, Mapping) else None
        if found is not None:
            value, start = found
            segments = segments[start:]
    for seg in segments:
        if isinstance(value, Mapping):
            value = value.get(seg)
        elif isinstance(value, list | tuple) and seg.isdigit():
            index = int(seg)
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def resolve_segments(segments: Sequence[str], document: Any) -> Any:
    """The value at already-split ``segments`` in ``document``; missing -> ``None``."""
    return _resolve(segments, document)


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """Resolve ``input.order.id`` / ``input.items.0`` in ``scope``; missing -> ``None``."""
    return _resolve(parse_path(path), scope)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    # JSON semantics: true is not 1 and false is not 0, unlike Python.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _contains(container: Any, item: Any) -> bool | None:
    """Membership, or None when ``container`` cannot hold ``item``."""
    if isinstance(container, str):
        return item in container if isinstance(item, str) else None
    if isinstance(container, list | tuple):
        return any(_equal(item, x) for x in container)
    if isinstance(container, Mapping):
        return item in container if isinstance(item, str) else None
    return None


def compare(op: str, a: Any, b: Any) -> bool:
    """Apply a comparison operator; incomparable operands give ``False``."""
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in ("in", "not in"):
        found = _contains(b, a)
        if found is None:
            return False
        return found if op == "in" else not found
    comparable = (_is_number(a) and _is_number(b)) or (
        type(a) is type(b) and isinstance(a, str | list | tuple)
    )
    if not comparable:
        return False
    try:
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    except TypeError:  # lists holding mixed types
        return False


# --- Go's object form and dot paths ------------------------------------------------------

GO_OPS: tuple[str, ...] = ("==", "!=", "<", ">", "<=", ">=")


def go_compare(op: str, a: Any, b: Any) -> bool:
    """Go's ``skip_if`` comparison: numbers numerically, strings lexicographically, booleans
    only by ``==``/``!=``; any other pair (missing, null, mixed types) is false, ``!=`` too."""
    if _is_number(a) and _is_number(b):
        pass
    elif isinstance(a, str) and isinstance(b, str):
        pass
    elif isinstance(a, bool) and isinstance(b, bool):
        if op not in ("==", "!="):
            return False
    else:
        return False
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    return compare(op, a, b)


def go_input_path(path: str) -> tuple[str, ...]:
    """Segments of a dot path into the run input: Go writes ``"order_id"``, dagnats
    ``"input.order_id"``; both name the same value."""
    segments = parse_path(path)
    return segments[1:] if segments[0] == "input" and len(segments) > 1 else segments


def input_value(path: str, run_input: Any) -> Any:
    """The run input's value at a Go or dagnats dot path (``None`` when missing)."""
    return _resolve(go_input_path(path), run_input)


def as_match_text(value: Any) -> str | None:
    """A value as Go's event match compares it: a string as is, a number or boolean as JSON
    (``123`` matches ``"123"``); ``None`` for missing, objects and lists (never a match)."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
