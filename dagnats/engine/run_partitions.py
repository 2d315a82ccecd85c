"""The partition of each run the engine is working on, remembered while it works on it.

The engine asks for a run's partition several times per event (its lease, its write's
fence); computing it is ~3.3 us in pure Python for a 28-character id
(:func:`dagnats.protocol.partitions.partition_of`), a lookup ~0.1 us. A memo that outlives
the runs (an LRU of the last 4,096 ids, as before) kept a burst's run ids and their cache
entries alive after the burst: ~9,000 small objects scattered over the memory the burst
used, which then could not go back to the system (ADR 0016 item 12). So an entry lives as
long as the run is in the engine's hands: the engine forgets it when the run's actor ends
and the run is no longer cached (finished, handed over or evicted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dagnats.protocol.partitions import partition_of

MAX_REMEMBERED = 16_384
"""A bound on remembered runs; past it the memo starts again empty. Runs parked in the
engine's snapshot cache (up to its 10,000) keep their entries, and so may a run that leaves
that cache while no actor holds it (evicted): those wait for the bound."""


class RunPartitions:
    """``of(run_id)``: the partition among ``n``, remembered until ``forget(run_id)``."""

    def __init__(self, n: int, *, max_remembered: int = MAX_REMEMBERED) -> None:
        if n < 1:
            raise ValueError(f"a partition count must be >= 1, got {n}")
        if max_remembered < 1:
            raise ValueError(f"max_remembered must be >= 1, got {max_remembered}")
        self.n = n
        self.max_remembered = max_remembered
        self._known: dict[str, int] = {}

    def of(self, run_id: str) -> int:
        p = self._known.get(run_id)
        if p is None:
            if len(self._known) >= self.max_remembered:
                self._known.clear()  # rare and cheap: each entry is computed again once
            p = self._known[run_id] = partition_of(run_id, self.n)
        return p

    def peek(self, run_id: str) -> int:
        """The partition, without remembering it (for runs the engine is not working on)."""
        p = self._known.get(run_id)
        return partition_of(run_id, self.n) if p is None else p

    def in_part(self, part: int) -> Callable[[str], bool]:
        """Whether a run is in partition ``part`` (nothing remembered)."""
        return lambda run_id: self.peek(run_id) == part

    def among(self, run_ids: Iterable[str], part: int) -> list[str]:
        """Those of ``run_ids`` in partition ``part`` (nothing remembered)."""
        return list(filter(self.in_part(part), run_ids))

    def known(self, run_id: str) -> bool:
        """Whether ``run_id``'s partition is remembered now."""
        return run_id in self._known

    def forget(self, run_id: str) -> None:
        self._known.pop(run_id, None)

    def __len__(self) -> int:
        return len(self._known)
