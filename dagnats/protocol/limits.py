"""The bounds every outside value is held to before it reaches NATS (pure, stdlib only).

One rule per kind of value, applied at every edge (API service, client, worker, HTTP):

- a *name* (workflow, task, step, signal, group, run id) is one NATS subject token and one
  KV key token: 1 to :data:`MAX_NAME_LEN` of ``[A-Za-z0-9_-]``. nats-server closes a
  connection for good on a control line over 4 KB (a subject or KV key that long), and the
  API, engine and HTTP gateway of ``serve`` share one connection: an unchecked name from one
  request would disconnect them all;
- a *dotted name* (an external event) is 1 to :data:`MAX_DOTTED_NAME_LEN` characters of such
  tokens joined by dots;
- JSON data is nested at most :data:`MAX_JSON_DEPTH` deep: pydantic's JSON reader refuses
  about 200 levels, so a deeper value would be accepted by the API and then lost by the
  engine, which cannot read the event that carries it;
- text copied into a reply (an error message) is cut to :data:`MAX_ERROR_TEXT` characters, so
  that a reply with its headers always fits in one NATS message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dagnats.protocol.names import DOTTED_NAME_PATTERN, MAX_NAME_LEN, NAME_PATTERN

MAX_JSON_DEPTH = 128
MAX_DOTTED_NAME_LEN = 255
MAX_ERROR_TEXT = 4096

_NAME_RE = re.compile(NAME_PATTERN)
_DOTTED_RE = re.compile(DOTTED_NAME_PATTERN)


class LimitError(ValueError):
    """A value breaks one of the bounds above; the message names the value and the limit."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def check_name(name: object, what: str) -> str:
    """``name`` if it is a valid name (see the module docstring), else :class:`LimitError`."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise LimitError(
            f"invalid {what} {_shown(name)}: use only letters, digits, '_' and '-' "
            f"(it becomes part of a NATS subject)"
        )
    if len(name) > MAX_NAME_LEN:
        raise LimitError(
            f"invalid {what}: {len(name)} characters, the limit is {MAX_NAME_LEN} (MAX_NAME_LEN)"
        )
    return name


def check_workflow_name(name: object, what: str = "workflow name") -> str:
    """``name`` if it is a valid workflow name or step id: name tokens joined by single
    dots, 1 to :data:`MAX_NAME_LEN` characters (``order.v2``, as Go allows). Its dots never
    reach NATS: keys and subjects spell it with ``names.name_token``."""
    if not isinstance(name, str) or not _DOTTED_RE.fullmatch(name):
        raise LimitError(
            f"invalid {what} {_shown(name)}: use letters, digits, '_' and '-', in "
            "parts joined by single dots"
        )
    if len(name) > MAX_NAME_LEN:
        raise LimitError(
            f"invalid {what}: {len(name)} characters, the limit is {MAX_NAME_LEN} (MAX_NAME_LEN)"
        )
    return name


def check_dotted_name(name: object, what: str) -> str:
    """``name`` if it is valid name tokens joined by dots, at most 255 characters."""
    if not isinstance(name, str) or not _DOTTED_RE.fullmatch(name):
        raise LimitError(
            f"invalid {what} {_shown(name)}: use letters, digits, '_' and '-', in "
            "parts joined by '.'"
        )
    if len(name) > MAX_DOTTED_NAME_LEN:
        raise LimitError(
            f"invalid {what}: {len(name)} characters, the limit is {MAX_DOTTED_NAME_LEN} "
            "(MAX_DOTTED_NAME_LEN)"
        )
    return name


def json_depth(value: Any, stop_at: int = MAX_JSON_DEPTH + 1) -> int:
    """How deep ``value`` nests (a scalar is 0, ``[1]`` is 1), counted up to ``stop_at``.

    Iterative, so a value too deep for the interpreter's recursion is measured too.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest >= stop_at:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def check_depth(value: Any, what: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``value`` if it nests at most ``limit`` deep, else :class:`LimitError` naming it."""
    if json_depth(value, limit + 1) > limit:
        raise LimitError(
            f"{what} is nested deeper than {limit} levels; the limit is {limit} (MAX_JSON_DEPTH)"
        )
    return value


def not_json_constant(word: str) -> Any:
    """``parse_constant`` of every JSON parse of outside input: Python's json reads ``NaN``
    and ``Infinity``, which are not JSON (RFC 8259) and came out of a run as ``null``."""
    raise ValueError(f"{word} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def loads(data: bytes | str, what: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside, bounded: malformed or too deep is :class:`LimitError`."""
    try:
        value = json.loads(data, parse_constant=not_json_constant)
    except RecursionError:
        raise LimitError(
            f"{what} is nested deeper than {limit} levels; the limit is {limit} (MAX_JSON_DEPTH)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise LimitError(f"{what} is not valid JSON: {exc}") from None
    return check_depth(value, what, limit)


def bounded_text(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked where it was cut."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}... ({len(text) - limit + 40} more characters)"
