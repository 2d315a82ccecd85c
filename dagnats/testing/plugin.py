"""pytest plugin (registered through the ``pytest11`` entry point): dagnats fixtures.

``dagnats_server`` is a private nats-server; ``dagnats_env`` a whole ``DagnatsEnv`` per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import pytest

from dagnats.server import EmbeddedNats
from dagnats.testing.env import DagnatsEnv

F = TypeVar("F", bound=Callable[..., Any])

try:  # pytest-asyncio in strict mode needs its own decorator; anyio's plugin takes plain ones
    import pytest_asyncio

    _deco: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - depends on the user's test stack
    _deco = pytest.fixture


def _fixture(fn: F) -> F:
    return cast(F, _deco(fn))


@_fixture
async def dagnats_server() -> AsyncIterator[EmbeddedNats]:
    async with EmbeddedNats(port=0) as server:
        yield server


@_fixture
async def dagnats_env() -> AsyncIterator[DagnatsEnv]:
    async with DagnatsEnv.start() as env:
        yield env
