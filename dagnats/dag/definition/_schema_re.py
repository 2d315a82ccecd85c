"""The ``jsonschema`` draft 2020-12 validator with its regular expressions run by RE2.

RE2 matches in time linear in the input, so no ``pattern`` in a user's schema can stall the
event loop (Python's backtracking ``re`` takes seconds on ``^(a+)+$`` and 30 characters).
Four keywords of the library call ``re.search``: ``pattern`` and ``patternProperties``
directly, ``additionalProperties`` and ``unevaluatedProperties`` through
``patternProperties``. They are replaced here by the same logic (adapted from jsonschema
4.26, MIT licence) on RE2; every other keyword is the library's own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

# google-re2 ships no type information; said here (not in pyproject) so that a user's
# mypy, which type-checks dagnats with its own configuration, says nothing either.
import re2  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, ValidationError, validators

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def compile_pattern(pattern: str) -> str | None:
    """``None`` when RE2 compiles ``pattern``, else RE2's reason."""
    try:
        _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema's semantics)."""
    return _compiled(pattern).search(text) is not None


def _pattern(v: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if v.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    v: Any, pattern_properties: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not v.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for k, value in instance.items():
            if search(pattern, k):
                yield from v.descend(value, subschema, path=k, schema_path=pattern)


def _matches_a_pattern(schema: Any, key: str) -> bool:
    return any(search(p, key) for p in schema.get("patternProperties", {}))


def _extras(keys: Iterable[Any]) -> str:
    keys = list(keys)
    verb = "was" if len(keys) == 1 else "were"
    return f"{', '.join(repr(k) for k in keys)} {verb} unexpected"


def _additional_properties(
    v: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not v.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    extras = [k for k in instance if k not in properties and not _matches_a_pattern(schema, k)]
    if v.is_type(additional, "object"):
        for extra in extras:
            yield from v.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            joined = ", ".join(repr(e) for e in sorted(extras))
            yield ValidationError(f"{joined} do(es) not match any of the regexes: {patterns}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({_extras(extras)})")


def _valid(errors: Iterator[ValidationError]) -> bool:
    return next(errors, None) is None


def _evaluated_keys(v: Any, instance: Any, schema: Any) -> set[str]:
    """The keys of ``instance`` some keyword of ``schema`` evaluates (for unevaluated*)."""
    if v.is_type(schema, "boolean"):
        return set()
    keys = _referenced_keys(v, instance, schema)
    properties = schema.get("properties")
    if v.is_type(properties, "object"):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        sub = schema.get(keyword)
        if sub is not None:
            keys |= {k for k, val in instance.items() if _valid(v.descend(val, sub))}
    keys |= {k for k in instance if _matches_a_pattern(schema, k)}
    for prop, sub in schema.get("dependentSchemas", {}).items():
        if prop in instance:
            keys |= _evaluated_keys(v, instance, sub)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(keyword, []):
            if _valid(v.descend(instance, sub)):
                keys |= _evaluated_keys(v, instance, sub)
    return keys | _conditional_keys(v, instance, schema)


def _referenced_keys(v: Any, instance: Any, schema: Any) -> set[str]:
    keys: set[str] = set()
    for ref_key in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_key)
        if ref is not None:
            resolved = v._resolver.lookup(ref)
            inner = v.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(inner, instance, resolved.contents)
    return keys


def _conditional_keys(v: Any, instance: Any, schema: Any) -> set[str]:
    if "if" not in schema:
        return set()
    if v.evolve(schema=schema["if"]).is_valid(instance):
        keys = _evaluated_keys(v, instance, schema["if"])
        if "then" in schema:
            keys |= _evaluated_keys(v, instance, schema["then"])
        return keys
    if "else" in schema:
        return _evaluated_keys(v, instance, schema["else"])
    return set()


def _unevaluated_properties(
    v: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not v.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(v, instance, schema)
    bad = [
        k
        for k in instance
        if k not in evaluated
        and not _valid(v.descend(instance[k], unevaluated, path=k, schema_path=k))
    ]
    if not bad:
        return
    if unevaluated is False:
        yield ValidationError(f"Unevaluated properties are not allowed ({_extras(sorted(bad))})")
    else:
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({', '.join(repr(k) for k in bad)} unevaluated and invalid)"
        )


RE2Validator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "unevaluatedProperties": _unevaluated_properties,
    },
)
