"""The condition language's syntax: the AST of a parsed condition, the tokeniser and the
recursive-descent parser (grammar in :mod:`dagnats.dag.definition.conditions`, its front door).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagnats.dag.definition.condition_values import (
    _SEGMENT,
    MAX_DEPTH,
    ROOTS,
    ConditionError,
    _resolve,
    compare,
)

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
