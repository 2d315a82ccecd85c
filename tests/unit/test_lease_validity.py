"""An engine's own view of its leases (no I/O): held only before the deadline its last
successful renewal set, and no epoch to write with after it."""

from __future__ import annotations

import time

import pytest

from dagnats._nats.stores import FencedError
from dagnats.engine.leases import Lease, PartitionLeases


async def nothing(_p: int) -> None:
    return None


def leases() -> PartitionLeases:
    return PartitionLeases(
        None,  # type: ignore[arg-type]  # never used: no round runs here
        8,
        "me",
        acquired=nothing,
        release=nothing,
        lost=nothing,
    )


def test_a_lease_is_held_until_its_deadline_only() -> None:
    mine = leases()
    now = time.monotonic()
    mine._held[2] = Lease(epoch=41, revision=57, valid_until=now + 60)
    mine._held[5] = Lease(epoch=43, revision=58, valid_until=now - 0.001)  # lapsed
    assert mine.holds(2) and mine.epoch(2) == 41
    assert not mine.holds(5) and mine.held == [2]
    with pytest.raises(FencedError, match="partition 5 is not held by engine me"):
        mine.epoch(5)
    with pytest.raises(FencedError):
        mine.epoch(3)  # never taken


def test_the_deadline_leaves_a_margin_before_the_server_expiry() -> None:
    mine = leases()
    assert 0 < mine.margin_s < mine.ttl_s - mine.renew_s
