"""Methodology: Payloads.resolve over an in-memory object store stand-in: which shapes the
engine builds around referenced outputs get resolved, and which user data is left alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from dagnats._nats.payloads import REF, Payloads


@dataclass
class _Obj:
    data: bytes


class _Store:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.gets: list[str] = []

    async def get(self, key: str) -> _Obj:
        self.gets.append(key)
        return _Obj(json.dumps(self.values[key]).encode())


def _payloads(values: dict[str, Any]) -> tuple[Payloads, _Store]:
    p = Payloads(cast(Any, None))
    store = _Store(values)
    p._obj = cast(Any, store)
    return p, store


def ref(key: str) -> dict[str, Any]:
    return {REF: key, "size": 1}


async def test_resolves_the_shapes_the_engine_builds() -> None:
    p, store = _payloads(
        {
            "a": "A" * 3,
            "b": [1, 2],
            "c": {"deep": ref("x")},
            "x": "XXX",
            "l1": [ref("l2")],
            "l2": [ref("l3")],
            "l3": [ref("l4")],
            "l4": "bottom",
        }
    )
    assert await p.resolve(ref("a")) == "AAA"  # a step output
    assert await p.resolve([ref("a"), 5, ref("b")]) == ["AAA", 5, [1, 2]]  # map fan-in
    assert await p.resolve({"s1": ref("a"), "s2": 3}) == {"s1": "AAA", "s2": 3}  # sinks/deps
    assert await p.resolve({"m": [ref("a"), ref("a")]}) == {"m": ["AAA", "AAA"]}  # map sink
    # A stored value may hold references itself (the engine offloads a fan-in list whose
    # items a worker offloaded): those are followed, to a bounded depth.
    assert await p.resolve(ref("c")) == {"deep": "XXX"}
    assert await p.resolve(ref("l1")) == [[[ref("l4")]]]
    assert "l4" not in store.gets
    # The same object is fetched once per call.
    store.gets.clear()
    await p.resolve([ref("a")] * 5)
    assert store.gets == ["a"]


async def test_leaves_values_without_references_untouched() -> None:
    p, store = _payloads({})
    value = {"a": [1, {"b": 2}], "c": "d"}
    assert await p.resolve(value) is value
    deep = {"a": {"b": ref("too-deep")}}
    assert await p.resolve({"x": deep}) == {"x": deep}
    assert store.gets == []
