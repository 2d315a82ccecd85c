"""The engine's per-run partition memo (engine.run_partitions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagnats.engine.run_partitions import RunPartitions
from dagnats.protocol.partitions import partition_of


@given(st.lists(st.text(alphabet="abcdef0123456789", min_size=1, max_size=30)), st.integers(1, 64))
def test_a_remembered_partition_is_the_computed_one(run_ids: list[str], n: int) -> None:
    memo = RunPartitions(n, max_remembered=8)
    for run_id in run_ids + run_ids:
        assert memo.of(run_id) == memo.peek(run_id) == partition_of(run_id, n)
    assert len(memo) <= 8


def test_a_run_is_remembered_until_forgotten_and_peek_remembers_nothing() -> None:
    memo = RunPartitions(8)
    assert memo.peek("run-a") == partition_of("run-a", 8) and len(memo) == 0
    memo.of("run-a")
    memo.of("run-b")
    assert len(memo) == 2
    memo.forget("run-a")
    memo.forget("run-never-seen")
    assert len(memo) == 1


def test_past_its_bound_the_memo_starts_again() -> None:
    memo = RunPartitions(4, max_remembered=3)
    for i in range(3):
        memo.of(f"run-{i}")
    assert len(memo) == 3
    assert memo.of("run-3") == partition_of("run-3", 4)
    assert len(memo) == 1


@pytest.mark.parametrize(("n", "bound"), [(0, 10), (4, 0)])
def test_a_bad_count_or_bound_is_refused(n: int, bound: int) -> None:
    with pytest.raises(ValueError, match=r"partition count|max_remembered"):
        RunPartitions(n, max_remembered=bound)


def test_the_runs_of_one_partition_are_picked_without_being_remembered() -> None:
    memo = RunPartitions(4)
    ids = [f"run-{i}" for i in range(40)]
    for part in range(4):
        assert memo.among(ids, part) == [r for r in ids if partition_of(r, 4) == part]
        assert all(memo.in_part(part)(r) for r in memo.among(ids, part))
    assert len(memo) == 0
