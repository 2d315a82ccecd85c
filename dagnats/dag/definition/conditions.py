"""A small, safe condition language for ``skip_if`` (and paths for ``until``, ``match``, ...).

No ``eval``: expressions are tokenised and parsed by hand into a tiny AST. Grammar::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand]
    operand    := "(" expr ")" | literal | list | path
    list       := "[" [literal ("," literal)*] "]"
    path       := ("input" | "run" | "steps") ("." segment)*
    literal    := number | 'string' | "string" | true | false | null | True | False | None

A bare operand is tested for truthiness (Python rules). Comparing values that cannot be
ordered (``None < 3``) is false instead of an error, because a condition over run data must
never crash a run. Booleans are never equal to numbers (JSON, not Python, semantics).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from dagnats.dag.definition.condition_parser import (
    BoolOp,
    Compare,
    Condition,
    Literal,
    Not,
    Path,
    _Parser,
)
from dagnats.dag.definition.condition_values import (
    GO_OPS,
    MAX_DEPTH,
    MAX_EXPR_LEN,
    ROOTS,
    ConditionError,
    as_match_text,
    compare,
    go_compare,
    go_input_path,
    input_value,
    lookup,
    parse_path,
    resolve_segments,
)


@functools.lru_cache(maxsize=1024)
def _parse_cached(expr: str) -> Condition:
    return _Parser(expr).parse()


def parse_condition(expr: str) -> Condition:
    """Parse a condition, raising :class:`ConditionError` naming the position and token."""
    if not isinstance(expr, str):
        raise ConditionError(f"a condition must be a string, got {type(expr).__name__}")
    if len(expr) > MAX_EXPR_LEN:
        raise ConditionError(
            f"condition is {len(expr)} characters long; the limit is {MAX_EXPR_LEN} (MAX_EXPR_LEN)"
        )
    if not expr.strip():
        raise ConditionError("empty condition")
    return _parse_cached(expr)


def evaluate_condition(expr: str, scope: Mapping[str, Any]) -> bool:
    """Parse (cached) and evaluate ``expr`` against ``scope``; the result is a bool."""
    return bool(parse_condition(expr).evaluate(scope))


__all__ = [
    "GO_OPS",
    "MAX_DEPTH",
    "MAX_EXPR_LEN",
    "ROOTS",
    "BoolOp",
    "Compare",
    "Condition",
    "ConditionError",
    "Literal",
    "Not",
    "Path",
    "as_match_text",
    "compare",
    "evaluate_condition",
    "go_compare",
    "go_input_path",
    "input_value",
    "lookup",
    "parse_condition",
    "parse_path",
    "resolve_segments",
]
