"""Methodology: operator truth tables, errors naming position/token, fuzz for ConditionError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagnats.dag.definition.conditions import (
    MAX_DEPTH,
    MAX_EXPR_LEN,
    ConditionError,
    compare,
    evaluate_condition,
    lookup,
    parse_condition,
    parse_path,
)

SCOPE: dict[str, Any] = {
    "input": {
        "count": 3,
        "ratio": 0.5,
        "name": "ada",
        "tags": ["a", "b"],
        "items": [{"id": 7}],
        "ok": True,
        "none": None,
        "empty": "",
        "nested": {"deep": {"x": 1}},
    },
    "run": {"input": {"mode": "dry"}},
    "steps": {"fetch-urls": {"status": "completed", "output": [1, 2]}},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("input.count", 3),
        ("input.items.0.id", 7),
        ("input.items.5", None),
        ("input.items.x", None),
        ("input.missing.deeper", None),
        ("input.nested.deep.x", 1),
        ("run.input.mode", "dry"),
        ("steps.fetch-urls.output.1", 2),
        ("input.count.x", None),
        ("input", SCOPE["input"]),
    ],
)
def test_lookup(path: str, expected: Any) -> None:
    assert lookup(path, SCOPE) == expected


@pytest.mark.parametrize("path", ["", "input.", ".input", "input..x", "input x", "input.a[0]"])
def test_lookup_rejects_bad_syntax(path: str) -> None:
    with pytest.raises(ConditionError, match="invalid path"):
        lookup(path, SCOPE)


def test_parse_path_rejects_non_string() -> None:
    with pytest.raises(ConditionError, match="must be a string"):
        parse_path(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("input.count == 3", True),
        ("input.count != 3", False),
        ("input.count > 2 and input.count <= 3", True),
        ("input.count < 3 or input.ratio >= 0.5", True),
        ("input.ratio == 5e-1", True),
        ("input.count == 3.0", True),
        ("input.count == -3", False),
        ("input.name == 'ada'", True),
        ('input.name == "ada"', True),
        ("input.name == 'it\\'s'", False),
        ("'d' in input.name", True),
        ("'a' in input.tags", True),
        ("'z' not in input.tags", True),
        ("'count' in input", True),
        ("input.name in ['ada', 'bob']", True),
        ("input.count in [1, 2]", False),
        ("input.count in []", False),
        ("input.ok", True),
        ("input.ok == true", True),
        ("input.ok == True", True),
        ("input.ok == 1", False),
        ("input.none == null", True),
        ("input.none == None", True),
        ("input.missing == null", True),
        ("input.none", False),
        ("input.empty", False),
        ("not input.empty", True),
        ("not not input.count", True),
        ("input.tags", True),
        ("(input.count == 3 or false) and not (input.name == 'bob')", True),
        ("false or false or true", True),
        ("true and true and false", False),
        ("run.input.mode == 'dry'", True),
        ("steps.fetch-urls.status == 'completed'", True),
        ("input.items.0.id >= 7", True),
        ("'a' < 'b'", True),
        # Incomparable operands are false, never an error.
        ("input.none < 3", False),
        ("input.none >= 3", False),
        ("input.name > 3", False),
        ("input.ok > 0", False),
        ("3 in input.count", False),
        ("3 not in input.count", False),
        ("1 in input.name", False),
        ("1 in input", False),
        ("input.tags < input.name", False),
    ],
)
def test_evaluate(expr: str, expected: bool) -> None:
    assert evaluate_condition(expr, SCOPE) is expected


def test_mixed_lists_compare_false() -> None:
    assert compare("<", [1], ["a"]) is False


@pytest.mark.parametrize(
    ("expr", "needles"),
    [
        ("input.count ==", ["position 14", "end of expression"]),
        ("foo == 1", ["unknown name 'foo'", "position 0", "'input', 'run' or 'steps'"]),
        ("(input.count == 3", ["')'", "position 0", "position 17"]),
        ("input.count == 1 == 2", ["chained comparison", "position 17"]),
        ("1 < 2 in [3]", ["chained comparison"]),
        ("input.count @ 1", ["unexpected character '@'", "position 12"]),
        ("'abc", ["unterminated string", "position 0"]),
        ("input.count 3", ["position 12", "'3'"]),
        ("and", ["position 0", "'and'"]),
        ("input.x in [1, input.y]", ["literal inside"]),
        ("input.x in [1 2]", ["',' or ']'"]),
        ("", ["empty condition"]),
        ("   ", ["empty condition"]),
        ("()", ["position 1"]),
        ("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1), ["deeper than 32", "MAX_DEPTH"]),
        ("not " * (MAX_DEPTH + 1) + "true", ["deeper than 32"]),
        ("1 == " + "1" * MAX_EXPR_LEN, ["limit is 1024", "MAX_EXPR_LEN"]),
    ],
)
def test_parse_errors(expr: str, needles: list[str]) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(expr)
    for needle in needles:
        assert needle in str(info.value)


def test_depth_limit_is_inclusive() -> None:
    expr = "(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH
    assert evaluate_condition(expr, SCOPE) is True


def test_non_string_condition() -> None:
    with pytest.raises(ConditionError, match="must be a string"):
        parse_condition(None)  # type: ignore[arg-type]


def test_parse_is_cached() -> None:
    assert parse_condition("input.count == 3") is parse_condition("input.count == 3")


def test_condition_error_is_value_error() -> None:
    assert issubclass(ConditionError, ValueError)


_ALPHABET = st.sampled_from(
    [
        *"()[],'\"=!<>. -0123456789abc",
        *["input.", "run.input.", "steps.", " and ", " or ", " not ", " in ", "true", "null"],
    ]
)


@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_fuzz_only_condition_errors(expr: str) -> None:
    try:
        result = evaluate_condition(expr, SCOPE)
    except ConditionError:
        return
    assert isinstance(result, bool)


@given(st.text(max_size=60))
def test_fuzz_arbitrary_text(expr: str) -> None:
    try:
        evaluate_condition(expr, SCOPE)
    except ConditionError:
        pass
