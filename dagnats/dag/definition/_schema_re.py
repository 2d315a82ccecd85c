"""The ``jsonschema`` draft 2020-12 validator with its regular expressions run by RE2.

RE2 matches in time linear in the input, so no ``pattern`` in a user's schema can stall the
event loop (Python's backtracking ``re`` takes seconds on ``^(a+)+$`` and 30 characters).

The library runs user regexes in four keywords: ``pattern`` and ``patternProperties``
directly, ``additionalProperties`` and ``unevaluatedProperties`` through two helpers of
``jsonschema._utils``. Rather than re-implement those keywords, this module runs the
library's own functions with one thing changed: the module they know as ``re`` is
:class:`_RE2`. Each function is rebuilt from its code object with a private copy of its
module's globals, so the library itself (and anyone else in the process using it) keeps
Python's ``re``. Should a jsonschema release rename what is rebound here, the import fails
with a message naming the version instead of silently falling back to backtracking.
"""

from __future__ import annotations

import functools
import types
from typing import Any

# google-re2 ships no type information; said here (not in pyproject) so that a user's
# mypy, which type-checks dagnats with its own configuration, says nothing either.
import re2  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, _keywords, _utils, validators

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr

# The library functions that call ``re.search`` (directly or through each other).
_UTILS_REBOUND = ("find_additional_properties", "find_evaluated_property_keys_by_schema")
# The keywords of that kind; the library's keyword functions are named as the keywords.
_KEYWORDS_REBOUND = (
    "pattern",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
)


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


class _RE2:
    """What the rebuilt library functions see as the ``re`` module: only ``search``."""

    @staticmethod
    def search(pattern: str, text: str) -> Any:
        return _compiled(pattern).search(text)


def _rebuilt(module: types.ModuleType, names: tuple[str, ...], extra: dict[str, Any]) -> Any:
    """Copies of ``module``'s functions ``names`` whose globals say ``re`` is RE2 and whose
    calls to each other (and to ``extra``) reach the copies."""
    scope = dict(vars(module))
    scope["re"] = _RE2
    scope.update(extra)
    for name in names:
        original = getattr(module, name, None)
        if not isinstance(original, types.FunctionType):
            raise ImportError(
                f"dagnats needs jsonschema's {module.__name__}.{name}; this jsonschema "
                "release does not have it (pin the version dagnats declares)"
            )
        scope[name] = types.FunctionType(
            original.__code__,
            scope,
            original.__name__,
            original.__defaults__,
            original.__closure__,
        )
    return scope


_utils_scope = _rebuilt(_utils, _UTILS_REBOUND, {})
_keywords_scope = _rebuilt(
    _keywords, _KEYWORDS_REBOUND, {name: _utils_scope[name] for name in _UTILS_REBOUND}
)

RE2Validator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {keyword: _keywords_scope[keyword] for keyword in _KEYWORDS_REBOUND},
)
