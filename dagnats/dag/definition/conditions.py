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
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_EXPR_LEN = 1024
MAX_DEPTH = 32
ROOTS: frozenset[str] = frozenset({"input", "run", "steps"})

_SEGMENT = r"[A-Za-z0-9_-]+"
_PATH_RE = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")
_TOKEN_PATH = re.compile(rf"[A-Za-z_][A-Za-z0-9_-]*(?:\.{_SEGMENT})*")
_TOKEN_NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_LITERAL_WORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_KEYWORDS = frozenset({"and", "or", "not", "in"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


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


# --- AST ---------------------------------------------------------------------------------


class Condition(ABC):
    """A parsed condition; ``evaluate`` returns the value (use :func:`truthy` for a bool)."""

    @abstractmethod
    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """The condition's value in ``scope``."""


@dataclass(frozen=True)
class Literal(Condition):
    value: Any

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class Path(Condition):
    segments: tuple[str, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return _resolve(self.segments, scope)


@dataclass(frozen=True)
class Not(Condition):
    operand: Condition

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return not self.operand.evaluate(scope)


@dataclass(frozen=True)
class BoolOp(Condition):
    op: str  # "and" | "or"
    operands: tuple[Condition, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        if self.op == "and":
            return all(bool(o.evaluate(scope)) for o in self.operands)
        return any(bool(o.evaluate(scope)) for o in self.operands)


@dataclass(frozen=True)
class Compare(Condition):
    op: str
    left: Condition
    right: Condition

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return compare(self.op, self.left.evaluate(scope), self.right.evaluate(scope))


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


# --- tokenizer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # "op", "kw", "lit", "path", "end", or the punctuation itself: ( ) [ ] ,
    text: str
    pos: int
    value: Any = None


def _read_string(expr: str, start: int) -> tuple[str, int]:
    quote = expr[start]
    out: list[str] = []
    i = start + 1
    while i < len(expr):
        ch = expr[i]
        if ch == "\\" and i + 1 < len(expr):
            nxt = expr[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ConditionError(f"unterminated string starting at position {start}")


def _tokenize(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(expr)
    while i < n:
        ch = expr[i]
        if ch.isspace():
            i += 1
        elif ch in "()[],":
            toks.append(_Tok(ch, ch, i))
            i += 1
        elif ch in "'\"":
            value, end = _read_string(expr, i)
            toks.append(_Tok("lit", expr[i:end], i, value))
            i = end
        elif op := next((o for o in _OPERATORS if expr.startswith(o, i)), None):
            toks.append(_Tok("op", op, i))
            i += len(op)
        elif m := _TOKEN_NUMBER.match(expr, i):
            text = m.group()
            is_float = any(c in text for c in ".eE")
            toks.append(_Tok("lit", text, i, float(text) if is_float else int(text)))
            i = m.end()
        elif m := _TOKEN_PATH.match(expr, i):
            text = m.group()
            if text in _KEYWORDS:
                toks.append(_Tok("kw", text, i))
            elif text in _LITERAL_WORDS:
                toks.append(_Tok("lit", text, i, _LITERAL_WORDS[text]))
            else:
                root = text.split(".", 1)[0]
                if root not in ROOTS:
                    raise ConditionError(
                        f"unknown name {root!r} at position {i}: paths start with "
                        "'input', 'run' or 'steps'; quote strings ('text')"
                    )
                toks.append(_Tok("path", text, i, tuple(text.split("."))))
            i = m.end()
        else:
            raise ConditionError(f"unexpected character {ch!r} at position {i}")
    toks.append(_Tok("end", "end of expression", n))
    return toks


# --- parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokenize(expr)
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, tok: _Tok, expected: str) -> ConditionError:
        return ConditionError(f"expected {expected} at position {tok.pos}, got {tok.text!r}")

    def enter(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                f"condition nests deeper than {MAX_DEPTH} levels (limit MAX_DEPTH) "
                f"at position {tok.pos}"
            )

    def parse(self) -> Condition:
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(tok, "'and', 'or' or end of expression")
        return node

    def or_expr(self) -> Condition:
        parts = [self.and_expr()]
        while self.peek().kind == "kw" and self.peek().text == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Condition:
        parts = [self.not_expr()]
        while self.peek().kind == "kw" and self.peek().text == "and":
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self) -> Condition:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            self.take()
            self.enter(tok)
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Condition:
        left = self.operand()
        tok = self.peek()
        if tok.kind == "op":
            op = self.take().text
        elif tok.kind == "kw" and tok.text == "in":
            op = self.take().text
        elif tok.kind == "kw" and tok.text == "not" and self.peek(1).text == "in":
            self.take()
            self.take()
            op = "not in"
        else:
            return left
        right = self.operand()
        nxt = self.peek()
        if nxt.kind == "op" or (nxt.kind == "kw" and nxt.text in ("in", "not")):
            raise ConditionError(
                f"chained comparison at position {nxt.pos}: combine comparisons with 'and'"
            )
        return Compare(op, left, right)

    def operand(self) -> Condition:
        tok = self.take()
        if tok.kind == "(":
            self.enter(tok)
            node = self.or_expr()
            self.depth -= 1
            close = self.take()
            if close.kind != ")":
                raise self.error(close, f"')' (to close the '(' at position {tok.pos})")
            return node
        if tok.kind == "[":
            return Literal(self.list_literal())
        if tok.kind == "lit":
            return Literal(tok.value)
        if tok.kind == "path":
            return Path(tok.value)
        raise self.error(tok, "a value, a path or '('")

    def list_literal(self) -> list[Any]:
        # Lists hold literals only: enough for `input.x in ['a', 'b']`, and keeps the
        # evaluator free of nested path resolution.
        items: list[Any] = []
        if self.peek().kind == "]":
            self.take()
            return items
        while True:
            tok = self.take()
            if tok.kind != "lit":
                raise self.error(tok, "a literal inside '[...]'")
            items.append(tok.value)
            sep = self.take()
            if sep.kind == "]":
                return items
            if sep.kind != ",":
                raise self.error(sep, "',' or ']'")


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
