"""Bulk operations: start many runs in one request, cancel runs by a filter.

Both are bounded (``MAX_BATCH`` items per call) and answer per item, so one bad input or
one finished run never hides what happened to the others.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from dagnats.errors import ApiError, DagnatsError
from dagnats.server.interactions import _workflow
from dagnats.server.run_lookup import matching_runs, resolve_run_id

if TYPE_CHECKING:
    from dagnats.server.operations import Operations

MAX_BATCH = 1000
START_CONCURRENCY = 32  # starts in flight at once within one start_many
_ACTIVE = ("scheduled", "pending", "running")


def _error(exc: Exception) -> dict[str, str]:
    kind = type(exc).__name__ if isinstance(exc, DagnatsError) else "ApiError"
    return {"kind": kind, "message": str(exc)}


class Bulk:
    """``run.start_many`` and ``run.cancel_many``."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    async def start_many(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"workflow", "inputs": [...], "idempotency_keys"?: [...], "revision"?}``.

        Each input is started as ``start_run`` would (its schema checked, its idempotency
        key honoured); the answer lists, in input order, ``{"index", "run_id",
        "duplicate"}`` or ``{"index", "error": {"kind", "message"}}``.
        """
        workflow = _workflow(body, "workflow")
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise ApiError("field 'inputs' is required (a list of run inputs)", code=400)
        if len(inputs) > MAX_BATCH:
            raise ApiError(
                f"field 'inputs' has {len(inputs)} items, more than {MAX_BATCH} per call",
                code=413,
            )
        keys = body.get("idempotency_keys")
        if keys is not None and (not isinstance(keys, list) or len(keys) != len(inputs)):
            raise ApiError(
                "field 'idempotency_keys' must be a list as long as 'inputs' (null: none)",
                code=400,
            )
        await self.ops.workflow_revision(workflow, body.get("revision"))  # 404 before any run
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def one(i: int, run_input: Any) -> dict[str, Any]:
            item = {
                "workflow": workflow,
                "input": run_input,
                "revision": body.get("revision"),
                "idempotency_key": keys[i] if keys is not None else None,
            }
            async with gate:
                try:
                    out = await self.ops.start_run(item)
                except (DagnatsError, ValueError) as exc:
                    return {"index": i, "error": _error(exc)}
            return {"index": i, "run_id": out["run_id"], "duplicate": out["duplicate"]}

        results = await asyncio.gather(*(one(i, x) for i, x in enumerate(inputs)))
        started = sum(1 for r in results if "run_id" in r and not r["duplicate"])
        failed = sum(1 for r in results if "error" in r)
        return {"results": list(results), "started": started, "failed": failed}

    async def cancel_many(self, body: dict[str, Any]) -> dict[str, Any]:
        """Cancel the runs a filter selects: ``run_ids`` (ids or prefixes), or ``workflow``
        and/or ``status``; at most ``limit`` (<= 1000). ``dry_run`` only says which.

        Only unfinished runs are selected by a filter (``status`` may narrow it to one of
        scheduled/pending/running); finished runs named in ``run_ids`` are counted as such.
        """
        ids, workflow, status = body.get("run_ids"), body.get("workflow"), body.get("status")
        if not ids and not workflow and not status:
            raise ApiError(
                "give 'workflow', 'status' or 'run_ids': cancelling every run takes a filter",
                code=400,
            )
        if status is not None and status not in _ACTIVE:
            raise ApiError(
                f"field 'status' must be one of {', '.join(_ACTIVE)} (only unfinished runs "
                f"can be cancelled), got {status!r}",
                code=400,
            )
        limit = body.get("limit") or MAX_BATCH
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
            raise ApiError(f"field 'limit' must be an integer from 1 to {MAX_BATCH}", code=400)
        targets, more, finished = await self._select(ids, workflow, status, limit)
        reason = body.get("reason") or "cancelled in bulk"
        dry = bool(body.get("dry_run"))
        if not dry:
            for run_id in targets:
                await self.ops._request_cancel(run_id, str(reason))
        return {
            "run_ids": targets,
            "matched": len(targets) + len(finished),
            "cancelled": 0 if dry else len(targets),
            "already_finished": finished,
            "more": more,
            "dry_run": dry,
        }

    async def _select(
        self, ids: Any, workflow: Any, status: Any, limit: int
    ) -> tuple[list[str], bool, list[str]]:
        """(runs to cancel, whether the filter matched more, named runs already finished)."""
        if ids:
            if not isinstance(ids, list) or len(ids) > MAX_BATCH:
                raise ApiError(f"field 'run_ids' must be a list of at most {MAX_BATCH}", code=400)
            targets: list[str] = []
            finished: list[str] = []
            for ref in ids:
                rid = await resolve_run_id(self.ops.js, self.ops.runs, ref)
                state = await self.ops._state(rid)
                if (workflow and state.workflow != workflow) or (status and state.status != status):
                    continue
                (finished if state.terminal else targets).append(rid)
            return targets[:limit], len(targets) > limit, finished
        runs, more = await matching_runs(
            self.ops.runs,
            self.ops.payloads,
            {"workflow": workflow, "status": status or list(_ACTIVE), "limit": limit},
        )
        return [r.run_id for r in runs], more, []
