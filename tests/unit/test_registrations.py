"""Methodology: the client's memory of what it registered (``Registrations``), against a
registering function that counts its calls and yields to the loop as a request would:
racing starts register a definition once, a revision found gone is registered again once
however many starts find it gone, definitions are told apart by their JSON (not their
name), and the memory is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dagnats.client import registrations
from dagnats.client.records import WorkflowInfo
from dagnats.client.registrations import Registrations


class Store:
    """Each registration of a new definition under a name takes the next revision."""

    def __init__(self) -> None:
        self.calls = 0
        self.revisions: dict[str, int] = {}

    async def register(self, payload: Any) -> WorkflowInfo:
        self.calls += 1
        await asyncio.sleep(0)  # a request: other starts run meanwhile
        name = payload["name"]
        self.revisions[name] = self.revisions.get(name, 0) + 1
        return WorkflowInfo(name=name, version=payload["version"], revision=self.revisions[name])


def _payload(version: str) -> dict[str, Any]:
    return {"name": "flow", "version": version, "steps": [{"id": "a", "task": "t"}]}


async def test_racing_starts_register_a_definition_once() -> None:
    store = Store()
    regs = Registrations(store.register)
    got = await asyncio.gather(*(regs.revision_of(_payload("1")) for _ in range(50)))
    assert {(name, rev) for name, rev, _key in got} == {("flow", 1)}
    assert store.calls == 1


async def test_a_revision_found_gone_is_registered_again_once() -> None:
    store = Store()
    regs = Registrations(store.register)
    _name, rev, key = await regs.revision_of(_payload("1"))
    again = await asyncio.gather(*(regs.again(key, rev) for _ in range(50)))
    assert again == [2] * 50  # the first registered it again, the others found that
    assert store.calls == 2
    assert (await regs.revision_of(_payload("1")))[1] == 2


async def test_definitions_under_one_name_keep_their_own_revisions() -> None:
    store = Store()
    regs = Registrations(store.register)
    revisions = [(await regs.revision_of(_payload(v)))[1] for v in ("1", "2", "1", "2")]
    assert revisions == [1, 2, 1, 2]
    assert store.calls == 2


async def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registrations, "MAX_REMEMBERED", 3)
    store = Store()
    regs = Registrations(store.register)
    for v in ("1", "2", "3", "4"):
        await regs.revision_of(_payload(v))
    await regs.revision_of(_payload("4"))  # still known
    assert store.calls == 4
    await regs.revision_of(_payload("1"))  # the oldest was forgotten: registered again
    assert store.calls == 5
