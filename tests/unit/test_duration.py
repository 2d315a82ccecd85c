"""Methodology: table-driven parse/format cases; hypothesis round-trips format -> parse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagnats.protocol.durations import (
    DAY,
    HOUR,
    MINUTE,
    MS,
    SECOND,
    US,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("0s", 0),
        ("250ms", 250 * MS),
        ("30s", 30 * SECOND),
        ("1h30m", HOUR + 30 * MINUTE),
        ("1.5s", 1500 * MS),
        (".5s", 500 * MS),
        ("10us", 10 * US),
        ("10µs", 10 * US),
        ("7ns", 7),
        ("+2m", 2 * MINUTE),
        (1_000_000_000, SECOND),
        (5.0, 5),
        (timedelta(days=1, microseconds=3), DAY + 3 * US),
    ],
)
def test_parse_accepts(text: object, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("", "empty"),
        ("abc", "invalid duration"),
        ("10", "invalid duration"),
        ("5d", "invalid duration"),
        ("+", "invalid duration"),
        ("-5s", "negative"),
        (-1, "negative"),
        (True, "string like"),
        (1.5, "got float"),
        ([1], "got list"),
        (2**63, "too large"),
        ("9999999999999h", "too large"),
    ],
)
def test_parse_rejects(value: object, needle: str) -> None:
    with pytest.raises(DurationError, match=needle):
        parse_duration(value)


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0s"), (SECOND, "1s"), (HOUR + 30 * MINUTE, "1h30m"), (1500 * MS, "1s500ms"), (3, "3ns")],
)
def test_format(ns: int, text: str) -> None:
    assert format_duration(ns) == text


def test_format_rejects_negative() -> None:
    with pytest.raises(DurationError, match="negative"):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_format_parse_round_trip(ns: int) -> None:
    assert parse_duration(format_duration(ns)) == ns


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_format_is_canonical(ns: int) -> None:
    text = format_duration(ns)
    assert format_duration(parse_duration(text)) == text
