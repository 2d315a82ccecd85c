"""How runs are spread over engines: history partitions, their consumers and leases (pure).

The history stream maps ``history.<run_id>`` to ``history.<p>.<run_id>`` with a subject
transform, ``p`` = ``partition(N, run_id)`` computed by nats-server (ADR 0013). Publishers
and core subscribers keep the unpartitioned subject; readers of the *stored* history use
:func:`history_filter`, which matches a run's events whatever N is. :func:`partition_of` is
the server's function (FNV-1a 32 of the run id, modulo N), checked against a real server in
the tests, for the engine to know a run's partition without asking.

Engines share partitions through leases in the ``engine_leases`` bucket (max age
``LEASE_TTL_S``): ``partition.<p>`` names the holder and the lease's epoch (the KV revision
it was acquired at, so a later holder always has a larger one); ``engine.<id>`` is each
engine's heartbeat. :func:`plan_leases` decides what one engine takes and gives back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PARTITIONS = 8
MAX_PARTITIONS = 256  # one durable consumer and one lease each: keep it small

KV_LEASES = "engine_leases"
LEASE_TTL_S = 7.0
"""A lease not renewed for this long expires on the server (the bucket's max age)."""
LEASE_RENEW_S = 1.0
"""How often an engine renews its leases, heartbeats and looks at the others': a killed
engine's partitions are taken at most ``LEASE_TTL_S + LEASE_RENEW_S`` after its last
renewal (8 s, inside issue 12's 10 s with room for a busy loop)."""
LEASE_MARGIN_S = 1.0
"""An engine stops acting on a partition this long before its lease could expire on the
server, counted from when it *sent* the last renewal that succeeded (the server stamps the
renewal later than that, so this only has to cover clocks running at slightly different
rates); a busy engine thus has ``LEASE_TTL_S - LEASE_MARGIN_S`` to get one renewal through."""

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_DEST_RE = re.compile(r"^history\.\{\{partition\((\d+),1\)\}\}\.\{\{wildcard\(1\)\}\}$")

HISTORY_TRANSFORM_SRC = "history.*"


def check_partitions(n: object) -> int:
    """``n`` if it is a valid partition count, else a ValueError naming the limit."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be an integer from 1 to {MAX_PARTITIONS}, got {n!r}")
    return n


_ENGINE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_engine_id(engine_id: str) -> str:
    """``engine_id`` if it can name an engine in the lease bucket (a KV key token)."""
    if not isinstance(engine_id, str) or not _ENGINE_ID_RE.match(engine_id):
        raise ValueError(
            f"engine id must be 1 to 128 letters, digits, '-' or '_', got {engine_id!r}"
        )
    return engine_id


def partition_of(run_id: str, n: int) -> int:
    """The partition of ``run_id`` among ``n``: nats-server's ``partition(n, 1)`` (~3.3 us
    for a 28-character id; the engine remembers it per run: engine.run_partitions)."""
    h = _FNV_OFFSET
    for b in run_id.encode():
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h % n


def history_transform_dest(n: int) -> str:
    """The destination of the history stream's subject transform for ``n`` partitions."""
    return f"history.{{{{partition({check_partitions(n)},1)}}}}.{{{{wildcard(1)}}}}"


def partitions_of_transform(src: str | None, dest: str | None) -> int | None:
    """The partition count a history stream's transform encodes; ``None``: not ours."""
    if src != HISTORY_TRANSFORM_SRC or dest is None:
        return None
    m = _DEST_RE.match(dest)
    return int(m.group(1)) if m else None


def history_filter(run_id: str) -> str:
    """The stored subjects of one run's history (any partition)."""
    return f"history.*.{run_id}"


def run_subject(run_id: str, n: int) -> str:
    """The one stored subject of ``run_id``'s history among ``n`` partitions: a literal,
    which nats-server finds from its subject index, where :func:`history_filter` (a
    wildcard) makes it scan the stream's blocks from the start sequence on."""
    return f"history.{partition_of(run_id, n)}.{run_id}"


def partition_filter(p: int) -> str:
    """The stored subjects of one partition's runs."""
    return f"history.{p}.*"


def partition_of_subject(subject: str) -> int:
    """The partition token of a stored history subject ``history.<p>.<run_id>``."""
    return int(subject.split(".", 2)[1])


ENGINE_CONSUMER_PREFIX = "dagnats-engine-"


def engine_consumer(p: int) -> str:
    """The durable consumer of partition ``p`` (one per partition, shared by no one else)."""
    return f"{ENGINE_CONSUMER_PREFIX}{p}"


def lease_key(p: int) -> str:
    return f"partition.{p}"


def engine_key(engine_id: str) -> str:
    return f"engine.{engine_id}"


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """What one engine does with the partitions this round."""

    acquire: tuple[int, ...]
    release: tuple[int, ...]


def fair_share(n: int, live: set[str], me: str) -> int:
    """How many of ``n`` partitions ``me`` should hold among the ``live`` engines: equal
    shares, the remainder to the first engines in id order (every engine computes the
    same shares from the same view)."""
    engines = sorted(live | {me})
    rank = engines.index(me)
    base, extra = divmod(n, len(engines))
    return base + (1 if rank < extra else 0)


def plan_leases(n: int, holders: dict[int, str], live: set[str], me: str) -> LeasePlan:
    """Take free partitions up to ``me``'s fair share, give back what is above it.

    ``holders``: partition -> engine id of the current leases (a missing partition is
    free: never taken, released or expired). A holder that is not ``live`` keeps its
    lease until the lease expires; only then is its partition free. Gives back the
    highest partitions first and never more than it holds above its share, so engines
    converge without taking each other's partitions by force.
    """
    share = fair_share(n, live, me)
    mine = sorted(p for p, holder in holders.items() if holder == me)
    if len(mine) > share:
        return LeasePlan(acquire=(), release=tuple(mine[share:][::-1]))
    free = [p for p in range(n) if p not in holders]
    return LeasePlan(acquire=tuple(free[: share - len(mine)]), release=())


_EPOCH_FIELD = b',"lease_epoch":'


def stamp_epoch(snapshot: bytes, epoch: int) -> bytes:
    """A snapshot's JSON object with the writer's lease epoch added as its last field."""
    return b"%s%s%d}" % (snapshot[:-1], _EPOCH_FIELD, epoch)


def epoch_of(snapshot: bytes) -> int:
    """The lease epoch a snapshot was written under (0: none, an older writer's)."""
    at = snapshot.rfind(_EPOCH_FIELD, max(0, len(snapshot) - 40))
    if at < 0:
        return 0
    digits = snapshot[at + len(_EPOCH_FIELD) : -1]
    return int(digits) if digits.isdigit() else 0
