"""A workflow's ``input_schema``: JSON Schema draft 2020-12, checked by the ``jsonschema``
library, with every regular expression run by a linear-time engine (RE2).

Python's ``re`` backtracks: ``^(a+)+$`` against 30 characters takes seconds, and it holds the
interpreter (a thread would not free the event loop). So the keywords that match patterns
(``pattern``, ``patternProperties``, and ``additionalProperties``/``unevaluatedProperties``,
which consult ``patternProperties``) are served by :mod:`dagnats.dag.definition._schema_re`,
and a pattern RE2 cannot compile (back-references, look-around) is refused when the
workflow is registered, with the pattern and the schema location named.

References stay inside the schema (``#...``): nothing is fetched (this layer does no I/O).
``format`` is an annotation, as 2020-12 says by default.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from dagnats.dag.definition._schema_re import RE2Validator, compile_pattern
from dagnats.errors import DefinitionError
from dagnats.protocol.limits import MAX_JSON_DEPTH, json_depth

MAX_MESSAGES = 20
MAX_MESSAGE_CHARS = 300


def _bad(where: str, rule: str) -> DefinitionError:
    return DefinitionError(f"JSON Schema at {where}: {rule}", field="input_schema")


def check_schema(schema: Any) -> None:
    """Raise DefinitionError if ``schema`` is not a valid draft 2020-12 schema for dagnats."""
    if not isinstance(schema, Mapping):
        raise _bad("#", "the schema must be an object")
    if json_depth(schema, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH:
        raise _bad("#", f"nested deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "#/" + "/".join(str(p) for p in exc.path)
        raise _bad(where.rstrip("/"), _short(exc.message)) from None
    for where, node in _subschemas(schema, "#"):
        _check_node(node, where)


def _check_node(node: Mapping[str, Any], where: str) -> None:
    patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), Mapping):
        patterns += list(node["patternProperties"])
    for pattern in patterns:
        problem = compile_pattern(pattern)
        if problem is not None:
            raise _bad(
                where,
                f"pattern {_short(repr(pattern))} is not a valid regular expression for the "
                f"linear-time engine (RE2: no back-references or look-around): {problem}",
            )
    for key in ("$ref", "$dynamicRef"):
        ref = node.get(key)
        if isinstance(ref, str) and not ref.startswith("#"):
            raise _bad(where, f"{key} {ref!r} must point into this schema ('#...')")


_DATA_KEYS = frozenset({"enum", "const", "default", "examples"})
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def _subschemas(schema: Any, root: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema object inside ``schema`` with its location (iterative; depth bounded).

    Values of data keywords (``enum``, ``const`` ...) are skipped; the children of a map of
    schemas (``properties`` ...) are schemas whatever they are called.
    """
    stack: list[tuple[str, Any, bool]] = [(root, schema, False)]
    while stack:
        at, node, is_map = stack.pop()
        if isinstance(node, list):
            stack.extend((f"{at}/{i}", v, False) for i, v in enumerate(node))
        elif isinstance(node, Mapping) and is_map:
            stack.extend((f"{at}/{k}", v, False) for k, v in node.items())
        elif isinstance(node, Mapping):
            yield at, node
            stack.extend(
                (f"{at}/{k}", v, k in _SCHEMA_MAPS) for k, v in node.items() if k not in _DATA_KEYS
            )


def validate_instance(schema: Any, value: Any, path: str = "input") -> list[str]:
    """Up to 20 messages like ``input.count: '3' is not of type 'integer'``; [] when valid."""
    try:
        validator = RE2Validator(schema)
        errors = list(itertools.islice(validator.iter_errors(value), MAX_MESSAGES))
    except Unresolvable as exc:
        return [f"{path}: a reference of the schema points to nothing: {_short(str(exc))}"]
    except RecursionError:
        return [f"{path}: the schema recurses without end (a $ref cycle) or the value is too deep"]
    return [_message(e, path) for e in errors]


def _message(error: ValidationError, path: str) -> str:
    where = ".".join([path, *(str(p) for p in error.absolute_path)])
    return f"{where}: {_short(error.message)}"


def _short(text: str) -> str:
    # Messages repeat the offending value: a large input would make a huge reply. Both ends
    # are kept, because the library puts the rule after the value.
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    half = MAX_MESSAGE_CHARS // 2 - 20
    return f"{text[:half]} ...({len(text) - 2 * half} chars)... {text[-half:]}"
