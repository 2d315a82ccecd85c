"""Shared fixtures: a real nats-server per test (free loopback port, temporary store)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from dagnats._nats.connection import connect as connect_nats
from dagnats._nats.resources import setup_resources
from dagnats._nats.types import NatsClient
from dagnats.server import EmbeddedNats


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-scale",
        type=int,
        default=None,
        help="multiply the chaos suite's runs and kills (tests/chaos; DAGNATS_CHAOS_SCALE)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chaos_scale = config.getoption("--chaos-scale")
    if chaos_scale is not None:  # the suite reads the variable (its worker processes too)
        os.environ["DAGNATS_CHAOS_SCALE"] = str(chaos_scale)


@pytest.fixture
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    async with EmbeddedNats(port=0) as server:
        yield server


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    conn = await connect_nats(nats_server.url)
    await setup_resources(conn.jetstream())
    yield conn
    await conn.close()
