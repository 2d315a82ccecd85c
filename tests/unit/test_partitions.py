"""The pure parts of partitioned engines: the partition function, shares and lease plans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagnats.protocol import partitions as parts


def test_partition_of_is_fnv1a_32_modulo_n() -> None:
    # FNV-1a 32 test vectors: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
    assert parts.partition_of("", 1 << 31) == 0x811C9DC5 % (1 << 31)
    assert parts.partition_of("a", 1000) == 0xE40C292C % 1000
    assert parts.partition_of("foobar", 7) == 0xBF9CF968 % 7


@given(st.text(alphabet="abcdef0123456789-_", min_size=1, max_size=64), st.integers(1, 256))
def test_every_run_has_one_partition_in_range(run_id: str, n: int) -> None:
    p = parts.partition_of(run_id, n)
    assert 0 <= p < n and p == parts.partition_of(run_id, n)


def test_the_transform_names_its_partition_count() -> None:
    dest = parts.history_transform_dest(8)
    assert dest == "history.{{partition(8,1)}}.{{wildcard(1)}}"
    assert parts.partitions_of_transform(parts.HISTORY_TRANSFORM_SRC, dest) == 8
    assert parts.partitions_of_transform("history.>", dest) is None
    assert parts.partitions_of_transform(parts.HISTORY_TRANSFORM_SRC, "history.x") is None
    assert parts.partition_of_subject("history.5.run-1") == 5


@pytest.mark.parametrize("bad", [0, 257, -1, True, 2.0, "8", None])
def test_a_bad_partition_count_is_refused_with_its_limit(bad: object) -> None:
    with pytest.raises(ValueError, match="partitions must be an integer from 1 to 256"):
        parts.check_partitions(bad)


@given(st.integers(1, 64), st.sets(st.text("abcxyz", min_size=1, max_size=4), min_size=1))
def test_fair_shares_add_up_and_differ_by_at_most_one(n: int, live: set[str]) -> None:
    shares = [parts.fair_share(n, live, me) for me in live]
    assert sum(shares) == n
    assert max(shares) - min(shares) <= 1


def test_a_lone_engine_takes_every_free_partition() -> None:
    plan = parts.plan_leases(8, {}, set(), "a")
    assert plan == parts.LeasePlan(acquire=tuple(range(8)), release=())


def test_an_engine_above_its_share_gives_back_its_highest_partitions() -> None:
    holders = dict.fromkeys(range(8), "a")
    plan = parts.plan_leases(8, holders, {"a", "b"}, "a")
    assert plan == parts.LeasePlan(acquire=(), release=(7, 6, 5, 4))
    # ... and the newcomer takes only what is free, never a held partition.
    assert parts.plan_leases(8, holders, {"a", "b"}, "b").acquire == ()
    half = {p: "a" for p in range(4)}
    assert parts.plan_leases(8, half, {"a", "b"}, "b").acquire == (4, 5, 6, 7)


def test_a_dead_engines_partitions_are_free_only_once_its_leases_expire() -> None:
    holders = {0: "a", 1: "a", 2: "dead", 3: "dead"}
    # "dead" stopped heartbeating but its leases have not expired: nothing to take yet.
    assert parts.plan_leases(4, holders, {"a"}, "a") == parts.LeasePlan((), ())
    assert parts.plan_leases(4, {0: "a", 1: "a"}, {"a"}, "a").acquire == (2, 3)


def test_shares_converge_for_three_engines_from_any_start() -> None:
    holders: dict[int, str] = {}
    live = {"a", "b", "c"}
    for _ in range(4):  # rounds: each engine plans on the same view in turn
        for me in sorted(live):
            plan = parts.plan_leases(8, holders, live, me)
            for p in plan.release:
                del holders[p]
            for p in plan.acquire:
                holders[p] = me
    counts = sorted(list(holders.values()).count(me) for me in live)
    assert counts == [2, 3, 3] and sorted(holders) == list(range(8))


def test_a_snapshot_carries_its_writers_epoch() -> None:
    snap = b'{"run_id":"r","workflow":"w"}'
    stamped = parts.stamp_epoch(snap, 1234)
    assert stamped == b'{"run_id":"r","workflow":"w","lease_epoch":1234}'
    assert parts.epoch_of(stamped) == 1234
    assert parts.epoch_of(snap) == 0  # written before partitions, or by a non-engine


def test_names_of_partition_resources() -> None:
    assert parts.engine_consumer(3) == "dagnats-engine-3"
    assert parts.partition_filter(3) == "history.3.*"
    assert parts.history_filter("r1") == "history.*.r1"
    assert parts.run_subject("r1", 8) == f"history.{parts.partition_of('r1', 8)}.r1"
    assert parts.lease_key(3) == "partition.3"
    assert parts.engine_key("host-1-abc") == "engine.host-1-abc"


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "x" * 129, "é"])
def test_an_engine_id_is_a_kv_key_token(bad: str) -> None:
    with pytest.raises(ValueError, match="engine id must be 1 to 128 letters"):
        parts.check_engine_id(bad)
    assert parts.check_engine_id("host-1_a") == "host-1_a"
