"""Turn a pydantic ``ValidationError`` on a workflow definition into a ``DefinitionError``.

Users write JSON, not pydantic models, so messages speak JSON: they name the step (by id,
and index for field errors), the field as a dotted path, the rule and the offending value:
``step 'resize' (index 1): field 'config.max_items': must be <= 10000 (got 20000)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dagnats.errors import DefinitionError
from dagnats.protocol.names import DOTTED_NAME_PATTERN, NAME_PATTERN

_MAX_REPORTED = 10
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}
_PATTERN_TEXT = {
    NAME_PATTERN: "must contain only letters, digits, '_' and '-'",
    DOTTED_NAME_PATTERN: "must be letters, digits, '_' and '-', in parts joined by single dots",
    r"^[A-Za-z0-9_.-]+$": "must contain only letters, digits, '_', '-' and '.'",
}


# Count limits named in their message, by field: the constant and why it is that.
_LIMIT_NAMES: dict[tuple[int | str, ...], str] = {
    ("cancel_on",): " (MAX_CANCEL_ON, as in Go: a file dagnats writes must load there)"
}


def json_type(value: Any) -> str:
    """The JSON name of a value's type (users never see Python type names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    if isinstance(value, str):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# pydantic's bound errors: the comparison and the ``ctx`` key holding the bound.
_BOUNDS = {
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
}


def _rule(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    got = err.get("input")
    if kind == "missing":
        return "required"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"must be {op} {ctx[key]} (got {_show(got)})"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        text = _PATTERN_TEXT.get(pattern, f"must match {pattern}")
        return f"{text} (got {_show(got)})"
    if kind == "string_too_short":
        return (
            f"must not be empty (got {_show(got)})"
            if ctx.get("min_length") == 1
            else (f"must be at least {ctx.get('min_length')} characters long")
        )
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_long":
        return (
            f"has {ctx.get('actual_length')} entries; the limit is {ctx.get('max_length')}"
            f"{_LIMIT_NAMES.get(tuple(err['loc']), '')}"
        )
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_show(got)})"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {json_type(got)} {_show(got)}"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        return str(error) if error is not None else err["msg"]
    return err["msg"][:1].lower() + err["msg"][1:]


def _step_label(raw: Mapping[str, Any], index: int) -> tuple[str, str | None]:
    steps = raw.get("steps")
    step: Any = steps[index] if isinstance(steps, list) and index < len(steps) else None
    sid = step.get("id") if isinstance(step, Mapping) else None
    if isinstance(sid, str) and sid:
        return f"step {sid!r}", sid
    return f"step at index {index}", None


def _one(err: ErrorDetails, raw: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    loc = tuple(err["loc"])
    name = raw.get("name")
    subject = f"workflow {name!r}" if isinstance(name, str) else "workflow"
    step_id: str | None = None
    indexed = False
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        subject, step_id = _step_label(raw, loc[1])
        indexed = step_id is not None
        if indexed:
            subject_full = f"{subject} (index {loc[1]})"
        else:
            subject_full = subject
        loc = loc[2:]
    else:
        subject_full = subject
    field = _field_path(loc) or None
    if err["type"] == "extra_forbidden":
        return f"{subject}: unknown field {field!r}", step_id, field
    if field is None:
        return f"{subject_full}: {_rule(err)}", step_id, None
    return f"{subject_full}: field {field!r}: {_rule(err)}", step_id, field


def validation_problems(exc: ValidationError, raw: Mapping[str, Any]) -> list[DefinitionError]:
    """Each problem of a ValidationError as its own DefinitionError (all of them)."""
    out = []
    for err in exc.errors():
        message, step_id, field = _one(err, raw)
        out.append(DefinitionError(message, step_id=step_id, field=field))
    return out


def translate_validation_error(
    exc: ValidationError, raw: Mapping[str, Any], *, loc_prefix: tuple[int | str, ...] = ()
) -> DefinitionError:
    """One DefinitionError listing every problem (at most 10); step/field from the first.

    ``raw`` is the workflow as the user wrote it (to name steps by id); ``loc_prefix`` places
    errors from validating a part (one step: ``("steps", index)``) within it.
    """
    problems = []
    for err in exc.errors():
        if loc_prefix:
            err = {**err, "loc": (*loc_prefix, *err["loc"])}
        problems.append(_one(err, raw))
    messages = [m for m, _, _ in problems]
    text = "; ".join(messages[:_MAX_REPORTED])
    if len(messages) > _MAX_REPORTED:
        text += f" (and {len(messages) - _MAX_REPORTED} more problems)"
    _, step_id, field = problems[0]
    return DefinitionError(text, step_id=step_id, field=field)
