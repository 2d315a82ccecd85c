"""A create that loses its race in any of nats-py's ways is ``None``, never an exception.

nats-py's ``KeyValue.create`` reads the key back after a refused create (to tell a delete
marker from a live value); when the key ages out or is purged between the two, that read
raises ``KeyNotFoundError``. Three engines taking leases at once hit it on a real cluster
and one of them died at start. The stand-in below raises what nats-py raises there: the
translation at the seam is what is tested (the race itself cannot be timed on a server).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from dagnats._nats import cas
from dagnats._nats.types import KeyNotFoundError, KeyValue, KeyWrongLastSequenceError


class Refusing:
    """A bucket whose create and update fail as nats-py's do in a lost race."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def create(self, key: str, value: bytes, msg_ttl: float | None = None) -> int:
        raise self.error

    async def update(self, key: str, value: bytes, last: int) -> int:
        raise self.error


@pytest.mark.parametrize(
    "error", [KeyWrongLastSequenceError(), KeyNotFoundError()], ids=["wrong-last", "vanished"]
)
async def test_a_lost_create_is_none(error: Exception) -> None:
    kv = cast(KeyValue, Refusing(error))
    assert await cas.write(kv, "partition.0", b"{}", 0) is None


async def test_a_lost_update_is_none() -> None:
    kv = cast(KeyValue, Refusing(KeyWrongLastSequenceError()))
    assert await cas.write(kv, "partition.0", b"{}", 7) is None


def test_other_errors_are_not_swallowed() -> None:
    kv: Any = Refusing(TimeoutError("nats: timeout"))
    with pytest.raises(TimeoutError):
        asyncio.run(cas.write(kv, "partition.0", b"{}", 0))
