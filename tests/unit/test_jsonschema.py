"""Methodology: keyword-by-keyword instance tables, pydantic schemas, bad schemas named."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from dagnats.dag.definition.jsonschema import (
    MAX_MESSAGES,
    check_schema,
    json_equal,
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
        ({"type": "integer"}, 3.5, ["input: expected integer, got number"]),
        ({"type": "integer"}, True, ["input: expected integer, got boolean"]),
        ({"type": "number"}, False, ["input: expected number, got boolean"]),
        ({"type": "number"}, 2, []),
        ({"type": ["string", "null"]}, None, []),
        ({"type": ["string", "null"]}, 1, ["input: expected string or null, got integer"]),
        ({"type": "object"}, [], ["input: expected object, got array"]),
        ({"type": "array"}, {}, ["input: expected array, got object"]),
        ({"type": "boolean"}, 0, ["input: expected boolean, got integer"]),
        ({"enum": [1, "a"]}, 1.0, []),
        ({"enum": [1, "a"]}, True, ["input: must be one of [1, 'a']"]),
        ({"const": "x"}, "y", ["input: must be 'x'"]),
        ({"minimum": 1, "maximum": 3}, 0, ["input: must be >= 1"]),
        ({"minimum": 1, "maximum": 3}, 4, ["input: must be <= 3"]),
        ({"exclusiveMinimum": 1}, 1, ["input: must be > 1"]),
        ({"exclusiveMaximum": 1}, 1, ["input: must be < 1"]),
        ({"minLength": 2}, "a", ["input: must be at least 2 characters long"]),
        ({"maxLength": 2}, "abc", ["input: must be at most 2 characters long"]),
        ({"pattern": "^a"}, "ba", ["input: must match the pattern '^a'"]),
        ({"minItems": 1}, [], ["input: must have at least 1 items"]),
        ({"maxItems": 1}, [1, 2], ["input: must have at most 1 items"]),
        ({"uniqueItems": True}, [1, 1.0], ["input: items must be unique"]),
        ({"uniqueItems": True}, [1, True, {"a": 1}, {"a": 2}], []),
        ({"items": {"type": "string"}}, ["a", 1], ["input.1: expected string, got integer"]),
        (
            {"prefixItems": [{"type": "integer"}], "items": False},
            [1, 2],
            ["input.1: no value is allowed here"],
        ),
        (
            {"type": "object", "required": ["repo"], "properties": {"count": {"type": "integer"}}},
            {"count": "3"},
            ["input.repo: required property missing", "input.count: expected integer, got string"],
        ),
        ({"additionalProperties": False}, {"x": 1}, ["input.x: unknown property"]),
        (
            {"additionalProperties": {"type": "integer"}},
            {"x": "1"},
            ["input.x: expected integer, got string"],
        ),
        (
            {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "x",
            ["input: does not match any of the allowed schemas (anyOf)"],
        ),
        (
            {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            1,
            ["input: matches 2 of the oneOf schemas, expected exactly one"],
        ),
        ({"allOf": [{"type": "integer"}, {"minimum": 5}]}, 3, ["input: must be >= 5"]),
        ({"not": {"type": "null"}}, None, ["input: matches a schema it must not match (not)"]),
        (
            {"$defs": {"P": {"type": "integer"}}, "$ref": "#/$defs/P"},
            "x",
            ["input: expected integer, got string"],
        ),
        ({"definitions": {"P": {"type": "integer"}}, "$ref": "#/definitions/P"}, 1, []),
        (
            {
                "title": "t",
                "description": "d",
                "default": 1,
                "examples": [1],
                "$schema": "x",
                "format": "date-time",
            },
            "nope",
            [],
        ),
        (True, "anything", []),
        (False, 1, ["input: no value is allowed here"]),
    ],
)
def test_keywords(schema: Any, value: Any, expected: list[str]) -> None:
    if isinstance(schema, dict):
        check_schema(schema)
    assert validate_instance(schema, value) == expected


def test_custom_root_path() -> None:
    assert validate_instance({"type": "string"}, 1, path="run.input") == [
        "run.input: expected string, got integer"
    ]


def test_messages_are_capped() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    assert len(validate_instance(schema, list(range(100)))) == MAX_MESSAGES


def test_self_referencing_ref_is_bounded() -> None:
    schema = {"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}
    check_schema(schema)
    assert "nested deeper than 64" in validate_instance(schema, 1)[0]


def test_deep_instance_is_bounded() -> None:
    schema = {
        "$defs": {"N": {"type": "array", "items": {"$ref": "#/$defs/N"}}},
        "$ref": "#/$defs/N",
    }
    value: list[Any] = []
    for _ in range(100):
        value = [value]
    assert any("nested deeper" in m for m in validate_instance(schema, value))


def test_unchecked_bad_ref_reports_instead_of_raising() -> None:
    assert "points to nothing" in validate_instance({"$ref": "#/$defs/X"}, 1)[0]


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
        ({"repo": ""}, "input.repo: must be at least 1 characters long"),
        ({"repo": "ABC"}, "input.repo: must match the pattern"),
        ({"count": "1"}, "input.count: expected integer, got string"),
        ({"address": {}}, "input.address.city: required property missing"),
        (
            {"items": [{"kind": "car", "qty": 1}]},
            "input.items.0.kind: must be one of ['book', 'pen']",
        ),
        ({"items": [{"kind": "pen", "qty": 11}]}, "input.items.0.qty: must be <= 10"),
        (
            {"children": [{"repo": "x", "count": 0}]},
            "input.children.0.address: required property missing",
        ),
        ({"pair": ["x", "x"]}, "input.pair: does not match any"),
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
    assert messages == ["input.tags: items must be unique"]


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
        ({"if": {}, "then": {}}, "unsupported keyword(s) 'if', 'then'"),
        (
            {"properties": {"a": {"patternProperties": {}}}},
            "#/properties/a: unsupported keyword(s) 'patternProperties'",
        ),
        ({"type": "str"}, "'type' must be one of"),
        ({"type": []}, "'type' must be one of"),
        ({"properties": []}, "'properties' must be an object of schemas"),
        ({"properties": {"a": 3}}, "must be an object or a boolean"),
        ({"anyOf": []}, "'anyOf' must be a non-empty array"),
        ({"minimum": "1"}, "'minimum' must be a number"),
        ({"minimum": True}, "'minimum' must be a number"),
        ({"maxLength": -1}, "'maxLength' must be a non-negative integer"),
        ({"required": "a"}, "'required' must be an array"),
        ({"enum": []}, "'enum' must be a non-empty array"),
        ({"uniqueItems": 1}, "'uniqueItems' must be true or false"),
        ({"pattern": "("}, "not a valid regular expression"),
        ({"$ref": "http://x/y"}, "must point into '#/$defs/'"),
        ({"$ref": "#/$defs/Missing"}, "points to nothing"),
    ],
)
def test_check_schema_rejects(schema: Any, needle: str) -> None:
    with pytest.raises(DefinitionError) as info:
        check_schema(schema)
    assert needle in str(info.value)
    assert info.value.field == "input_schema"


def test_check_schema_depth_limit() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(70):
        schema = {"items": schema}
    with pytest.raises(DefinitionError, match="deeper than 64"):
        check_schema(schema)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (1, True, False),
        ([1, {"a": 2}], [1.0, {"a": 2}], True),
        ({"a": 1}, {"b": 1}, False),
        ("1", 1, False),
    ],
)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
