"""The client's redrive and bulk methods: retry, rerun, start_many, cancel_runs, dead letters.

``Client`` holds a :class:`Redrive` (kept apart so the client module stays about single
runs) and keeps the public methods itself. Run ids may be given as an unambiguous prefix of
8+ characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dagnats._nats.payloads import THRESHOLD_BYTES

MAX_BATCH = 1000  # inputs per start_many call, runs per cancel_runs call
# One request is one NATS message (1 MiB): start_many sends its inputs in requests this big.
MAX_REQUEST_BYTES = 768 * 1024
# The API waits up to 10 s for the engine to apply a retry; starts of a batch take a while.
RETRY_TIMEOUT_S = 20.0
BATCH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StartResult:
    """One input of ``start_many``: its run, or why it did not start."""

    index: int
    run_id: str | None = None
    duplicate: bool = False
    """An idempotency key matched an earlier run: ``run_id`` is that run."""
    error: dict[str, str] | None = None
    """``{"kind", "message"}`` when this input was refused (bad input, ...)."""

    @property
    def ok(self) -> bool:
        return self.run_id is not None


@dataclass(frozen=True)
class CancelResult:
    """What ``cancel_runs`` did; iterating it gives the ids of the runs told to cancel."""

    run_ids: list[str]
    matched: int
    cancelled: int
    already_finished: list[str] = field(default_factory=list)
    more: bool = False
    """More runs matched than ``limit``: call again for the rest."""
    dry_run: bool = False

    def __iter__(self) -> Iterator[str]:
        return iter(self.run_ids)

    def __len__(self) -> int:
        return len(self.run_ids)


@dataclass(frozen=True)
class DeadLetter:
    """A task whose step failed after its last attempt (stream ``DEAD_LETTERS``)."""

    seq: int
    run_id: str | None
    step_id: str | None
    error: Any
    task: str | None = None
    item: int | None = None
    attempts: int | None = None
    input: Any = None
    time: str | None = None
    engine: bool = False
    """A history event the engine could not apply (not replayable), not a task."""


def since_text(value: datetime | str | None) -> str | None:
    """``list_runs(since=)`` on the wire: an RFC 3339 time."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("since: give an aware datetime (with a tzinfo)")
        return value.isoformat()
    return value


class ApiCall(Protocol):
    """``Client.call``: one API request, its reply decoded (what the collaborators send by)."""

    async def __call__(
        self, op: str, body: dict[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> Any: ...


class Redrive:
    """The requests behind ``Client``'s redrive and bulk methods; it knows only ``call``
    (the ``Client`` wraps the run ids it returns into handles)."""

    def __init__(self, call: ApiCall) -> None:
        self._call = call

    async def resolve_run_id(self, ref: str) -> str:
        out = await self._call("run.resolve", {"run_id": ref})
        return str(out["run_id"])

    async def last_run_id(self, workflow: str | None) -> str:
        out = await self._call("run.resolve", {"last": True, "workflow": workflow})
        return str(out["run_id"])

    async def retry_run(self, run_id: str, reason: str | None) -> str:
        out = await self._call(
            "run.retry", {"run_id": run_id, "reason": reason}, timeout_s=RETRY_TIMEOUT_S
        )
        return str(out["run_id"])

    async def rerun(self, run_id: str, idempotency_key: str | None) -> dict[str, Any]:
        """The reply: ``run_id`` and ``workflow`` of the new run."""
        body = {"run_id": run_id, "idempotency_key": idempotency_key}
        out: dict[str, Any] = await self._call("run.rerun", body)
        return out

    async def start_many(
        self,
        workflow: str,
        inputs: Sequence[Any],
        idempotency_keys: Sequence[str | None] | None,
        revision: int | None,
    ) -> list[StartResult]:
        items = list(inputs)
        if len(items) > MAX_BATCH:
            raise ValueError(f"start_many: {len(items)} inputs, more than {MAX_BATCH} per call")
        for i, x in enumerate(items):
            size = len(json.dumps(x, default=str))
            if size > THRESHOLD_BYTES:
                raise ValueError(
                    f"start_many: input {i} is {size} bytes, above {THRESHOLD_BYTES}; "
                    "start inputs that large one by one with start()"
                )
        keys = list(idempotency_keys) if idempotency_keys is not None else None
        if keys is not None and len(keys) != len(items):
            raise ValueError("start_many: idempotency_keys must be as long as inputs")
        results: list[StartResult] = []
        for lo, hi in _chunks([len(json.dumps(x, default=str)) for x in items]):
            body = {
                "workflow": workflow,
                "inputs": items[lo:hi],
                "idempotency_keys": keys[lo:hi] if keys is not None else None,
                "revision": revision,
            }
            out = await self._call("run.start_many", body, timeout_s=BATCH_TIMEOUT_S)
            for r in out["results"]:
                results.append(StartResult(**{**r, "index": r["index"] + lo}))
        return results

    async def cancel_runs(self, body: dict[str, Any]) -> CancelResult:
        out = await self._call("run.cancel_many", body, timeout_s=BATCH_TIMEOUT_S)
        return CancelResult(**out)

    async def list_dead_letters(self, run_id: str | None, limit: int) -> list[DeadLetter]:
        out = await self._call("dlq.list", {"run_id": run_id, "limit": limit})
        return [DeadLetter(**d) for d in out["dead_letters"]]

    async def replay_dead_letter(self, seq: int | None, run_id: str | None) -> str:
        out = await self._call(
            "dlq.replay", {"seq": seq, "run_id": run_id}, timeout_s=RETRY_TIMEOUT_S
        )
        return str(out["run_id"])


def _chunks(sizes: list[int]) -> list[tuple[int, int]]:
    """Index ranges whose inputs fit one request each (an input alone always gets one)."""
    out: list[tuple[int, int]] = []
    lo, total = 0, 0
    for i, n in enumerate(sizes):
        if i > lo and total + n > MAX_REQUEST_BYTES:
            out.append((lo, i))
            lo, total = i, 0
        total += n + 2
    out.append((lo, len(sizes)))
    return out


__all__ = ["ApiCall", "CancelResult", "DeadLetter", "Redrive", "StartResult", "since_text"]
