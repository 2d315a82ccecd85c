"""Methodology: keyword-by-keyword instance tables (the library's messages, draft 2020-12
keywords included), pydantic schemas, bad schemas named, catastrophic patterns timed."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from dagnats.dag.definition.jsonschema import (
    MAX_MESSAGES,
    check_schema,
    validate_instance,
)
from dagnats.errors import DefinitionError


class Address(BaseModel):
    city: str
    zip: str | None = None


class Item(BaseModel):
    kind: Literal["book", "pen"]
    qty: int = Field(ge=1, le=10)


class Order(BaseModel):
    repo: str = Field(min_length=1, pattern=r"^[a-z]+$")
    count: int
    price: float = 1.0
    tags: set[str] = set()
    pair: tuple[int, str] | None = None
    address: Address
    items: list[Item] = []
    children: list[Order] = []


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"type": "integer"}, 3, []),
        ({"type": "integer"}, 3.0, []),
        ({"type": "integer"}, 3.5, ["input: 3.5 is not of type 'integer'"]),
        ({"type": "integer"}, True, ["input: True is not of type 'integer'"]),
        ({"type": ["string", "null"]}, None, []),
        ({"type": ["string", "null"]}, 1, ["input: 1 is not of type 'string', 'null'"]),
        ({"enum": [1, "a"]}, 1.0, []),
        ({"enum": [1, "a"]}, True, ["input: True is not one of [1, 'a']"]),
        ({"const": "x"}, "y", ["input: 'x' was expected"]),
        ({"minimum": 1, "maximum": 3}, 0, ["input: 0 is less than the minimum of 1"]),
        ({"exclusiveMaximum": 1}, 1, ["input: 1 is greater than or equal to the maximum of 1"]),
        ({"minLength": 2}, "a", ["input: 'a' is too short"]),
        ({"pattern": "^a"}, "ba", ["input: 'ba' does not match '^a'"]),
        ({"uniqueItems": True}, [1, 1.0], ["input: [1, 1.0] has non-unique elements"]),
        ({"items": {"type": "string"}}, ["a", 1], ["input.1: 1 is not of type 'string'"]),
        (
            {"type": "object", "required": ["repo"], "properties": {"count": {"type": "integer"}}},
            {"count": "3"},
            ["input: 'repo' is a required property", "input.count: '3' is not of type 'integer'"],
        ),
        (
            {"additionalProperties": False},
            {"x": 1},
            ["input: Additional properties are not allowed ('x' was unexpected)"],
        ),
        # Draft 2020-12 keywords the home-made subset refused: now the library's.
        ({"multipleOf": 3}, 4, ["input: 4 is not a multiple of 3"]),
        (
            {"patternProperties": {"^n_": {"type": "integer"}}},
            {"n_a": "x", "b": "y"},
            ["input.n_a: 'x' is not of type 'integer'"],
        ),
        (
            {"patternProperties": {"^n_": True}, "additionalProperties": False},
            {"n_a": 1, "b": 2},
            ["input: 'b' does not match any of the regexes: '^n_'"],
        ),
        (
            {"patternProperties": {"^n_": True}, "unevaluatedProperties": False},
            {"n_a": 1, "b": 2},
            ["input: Unevaluated properties are not allowed ('b' was unexpected)"],
        ),
        (
            {"if": {"properties": {"k": {"const": 1}}}, "then": {"required": ["v"]}},
            {"k": 1},
            ["input: 'v' is a required property"],
        ),
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}, ["input: 'b' is a dependency of 'a'"]),
        (
            {"propertyNames": {"pattern": "^[a-z]+$"}},
            {"A": 1},
            ["input: 'A' does not match '^[a-z]+$'"],
        ),
        (
            {"contains": {"type": "integer"}, "minContains": 2},
            [1, "a"],
            [
                "input: Too few items match the given schema "
                "(expected at least 2 but only 1 matched)"
            ],
        ),
        (
            {"$defs": {"P": {"type": "integer"}}, "$ref": "#/$defs/P"},
            "x",
            ["input: 'x' is not of type 'integer'"],
        ),
        ({"format": "date-time"}, "nope", []),  # an annotation in 2020-12
        (True, "anything", []),
        (False, 1, ["input: False schema does not allow 1"]),
    ],
)
def test_keywords(schema: Any, value: Any, expected: list[str]) -> None:
    if isinstance(schema, dict):
        check_schema(schema)
    assert validate_instance(schema, value) == expected


def test_custom_root_path() -> None:
    assert validate_instance({"type": "string"}, 1, path="run.input") == [
        "run.input: 1 is not of type 'string'"
    ]


def test_messages_are_capped() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    assert len(validate_instance(schema, list(range(100)))) == MAX_MESSAGES


def test_self_referencing_ref_is_bounded() -> None:
    schema = {"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}
    check_schema(schema)
    assert "recurses without end" in validate_instance(schema, 1)[0]


def test_unchecked_bad_ref_reports_instead_of_raising() -> None:
    assert "points to nothing" in validate_instance({"$ref": "#/$defs/X"}, 1)[0]


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    # Python's re takes ~2.5 s here at 26 characters and doubles per character: RE2 does not
    # backtrack, so 10,000 characters take well under a second.
    schema = {"type": "string", "pattern": "^(a+)+$"}
    check_schema(schema)
    started = time.monotonic()
    messages = validate_instance(schema, "a" * 10_000 + "!")
    assert time.monotonic() - started < 0.5
    assert len(messages) == 1 and "does not match '^(a+)+$'" in messages[0]


def test_catastrophic_pattern_properties_and_additional_run_in_linear_time() -> None:
    schema = {"patternProperties": {"^(a|aa)+$": True}, "additionalProperties": False}
    started = time.monotonic()
    messages = validate_instance(schema, {"a" * 5000 + "b": 1})
    assert time.monotonic() - started < 0.5
    assert "does not match any of the regexes" in messages[0]


def test_long_values_are_cut_in_messages() -> None:
    messages = validate_instance({"type": "integer"}, "x" * 100_000)
    assert len(messages[0]) <= 400 and "chars)..." in messages[0]
    assert messages[0].endswith("is not of type 'integer'")


PYDANTIC_SCHEMA = Order.model_json_schema()
GOOD: dict[str, Any] = {
    "repo": "abc",
    "count": 1,
    "address": {"city": "Oslo"},
    "items": [{"kind": "pen", "qty": 2}],
    "children": [{"repo": "x", "count": 0, "address": {"city": "A", "zip": None}}],
    "tags": ["a", "b"],
    "pair": [1, "x"],
}


def test_pydantic_schema_is_supported() -> None:
    check_schema(PYDANTIC_SCHEMA)
    assert validate_instance(PYDANTIC_SCHEMA, GOOD) == []


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"repo": ""}, "input.repo: '' should be non-empty"),
        ({"repo": "ABC"}, "input.repo: 'ABC' does not match '^[a-z]+$'"),
        ({"count": "1"}, "input.count: '1' is not of type 'integer'"),
        ({"address": {}}, "input.address: 'city' is a required property"),
        ({"items": [{"kind": "car", "qty": 1}]}, "input.items.0.kind: 'car' is not one of"),
        ({"items": [{"kind": "pen", "qty": 11}]}, "input.items.0.qty: 11 is greater than"),
        (
            {"children": [{"repo": "x", "count": 0}]},
            "input.children.0: 'address' is a required property",
        ),
        ({"pair": ["x", "x"]}, "input.pair: ['x', 'x'] is not valid under any"),
    ],
)
def test_pydantic_schema_rejects(patch: dict[str, Any], needle: str) -> None:
    value = {**GOOD, **patch}
    with pytest.raises(ValidationError):
        Order.model_validate_json(json.dumps(value), strict=True)
    messages = validate_instance(PYDANTIC_SCHEMA, value)
    assert any(needle in m for m in messages), messages


def test_unique_items_stricter_than_pydantic_sets() -> None:
    # pydantic folds duplicates into a set; the schema says uniqueItems, so input is rejected.
    messages = validate_instance(PYDANTIC_SCHEMA, {**GOOD, "tags": ["a", "a"]})
    assert messages == ["input.tags: ['a', 'a'] has non-unique elements"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["repo", "count", "address", "city"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(_JSON)
def test_agrees_with_pydantic_on_simple_model(value: Any) -> None:
    schema = Address.model_json_schema()
    try:
        Address.model_validate(value, strict=True)
        ok = True
    except ValidationError:
        ok = False
    assert (validate_instance(schema, value) == []) == ok


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ([], "must be an object"),
        ({"type": "str"}, "#/type: 'str' is not valid under any of the given schemas"),
        ({"properties": []}, "#/properties: [] is not of type 'object'"),
        ({"properties": {"a": 3}}, "#/properties/a: 3 is not of type 'object', 'boolean'"),
        ({"anyOf": []}, "#/anyOf: [] should be non-empty"),
        ({"minimum": "1"}, "#/minimum: '1' is not of type 'number'"),
        ({"maxLength": -1}, "#/maxLength: -1 is less than the minimum of 0"),
        ({"required": "a"}, "#/required: 'a' is not of type 'array'"),
        ({"pattern": "("}, "#/pattern: '(' is not a 'regex'"),
        ({"pattern": "(a)\\1"}, "not a valid regular expression for the linear-time engine"),
        (
            {"properties": {"a": {"patternProperties": {"(?=x)": True}}}},
            "#/properties/a: pattern '(?=x)' is not a valid regular expression",
        ),
        ({"$ref": "http://x/y"}, "$ref 'http://x/y' must point into this schema"),
    ],
)
def test_check_schema_rejects(schema: Any, needle: str) -> None:
    with pytest.raises(DefinitionError) as info:
        check_schema(schema)
    assert needle in str(info.value)
    assert info.value.field == "input_schema"


def test_a_property_called_like_a_data_keyword_is_still_a_schema() -> None:
    with pytest.raises(DefinitionError, match="properties/enum: pattern"):
        check_schema({"properties": {"enum": {"pattern": "(?<=a)b"}}})
    check_schema({"enum": [{"pattern": "(?<=a)b"}]})  # data, not a schema


def test_check_schema_depth_limit() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(130):
        schema = {"items": schema}
    with pytest.raises(DefinitionError, match="deeper than 128 levels"):
        check_schema(schema)


def test_the_library_itself_keeps_python_re() -> None:
    # Only dagnats' validator runs RE2: another user of jsonschema in the same process still
    # has Python's re, lookahead included (which RE2 refuses).
    import re

    import jsonschema
    from jsonschema import _keywords, _utils

    assert vars(_keywords)["re"] is re and vars(_utils)["re"] is re
    jsonschema.validate("ab", {"pattern": "a(?=b)"})
    assert check_schema_refuses({"type": "string", "pattern": "a(?=b)"})


def check_schema_refuses(schema: dict[str, Any]) -> bool:
    try:
        check_schema(schema)
    except DefinitionError:
        return True
    return False
