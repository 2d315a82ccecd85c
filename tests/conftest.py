"""Shared fixtures: a real nats-server per test (free loopback port, temporary store)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from dagnats._nats.resources import setup_resources
from dagnats.server import EmbeddedNats


@pytest.fixture
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    async with EmbeddedNats(port=0) as server:
        yield server


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    conn = await nats.connect(nats_server.url)
    await setup_resources(conn.jetstream())
    yield conn
    await conn.close()
