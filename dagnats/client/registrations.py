"""What a client registered, so a ``Workflow`` object given to ``start`` is registered once.

Keyed by the definition's JSON (not its name): two definitions under one name each keep
their revision, and a definition without a usable name is not registered on every start.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from dagnats.client.records import WorkflowInfo

MAX_REMEMBERED = 1000  # definitions one client remembers (the oldest are registered again)

Register = Callable[[Any], Awaitable[WorkflowInfo]]


class Registrations:
    """Definition JSON -> (name, revision) this client registered it as."""

    def __init__(self, register: Register) -> None:
        self._register = register
        self._known: OrderedDict[str, tuple[str, int]] = OrderedDict()
        # One registration at a time: starts racing with one new definition wait for the
        # first to register it and then find it, instead of registering it each.
        self._lock = asyncio.Lock()

    async def revision_of(self, payload: Any) -> tuple[str, int, str]:
        """``payload``'s name and revision, registering it if this client has not, and the
        key that names it to :meth:`again`."""
        key = json.dumps(payload, sort_keys=True, default=str)
        hit = self._known.get(key)
        if hit is None:
            async with self._lock:
                hit = self._known.get(key)
                if hit is None:  # not registered meanwhile
                    hit = self._remember(key, await self._register(payload))
        return hit[0], hit[1], key

    async def again(self, key: str, gone: int | None) -> int:
        """The revision to start instead of ``gone``, which the store no longer has (it
        keeps 64 per name, or the workflow was deleted): the one a racing start registered
        already, else the definition registered again."""
        async with self._lock:
            hit = self._known.get(key)
            if hit is not None and hit[1] != gone:
                return hit[1]
            return self._remember(key, await self._register(json.loads(key)))[1]

    def _remember(self, key: str, info: WorkflowInfo) -> tuple[str, int]:
        self._known[key] = (info.name, info.revision)
        self._known.move_to_end(key)
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)
        return info.name, info.revision
