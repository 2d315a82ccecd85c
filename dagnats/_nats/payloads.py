"""Large payloads: values above a threshold live in the ``payloads`` object store.

A message then carries ``{"$dagnats_ref": key, "size": n}`` instead of the value. Workers
resolve references in their input and offload large outputs; the engine passes references
through untouched (a 3 MiB output costs the engine nothing); clients resolve results.
NATS's ``max_payload`` (1 MiB) is the hard limit the threshold keeps messages under.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from dagnats import protocol
from dagnats.dag.machine.state import RunState
from dagnats.protocol.ended import SNAPSHOT_REF
from dagnats.protocol.keys import snapshot_key

THRESHOLD_BYTES = 256 * 1024
REF = "$dagnats_ref"
MAX_PAYLOAD_BYTES = 512 * 1024 * 1024  # one stored value; larger is a user error


RESOLVE_DEPTH = 2  # containers the engine builds around outputs, nested once
MAX_CONCURRENT_FETCHES = 32


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF), str) and len(value) <= 2


def _collect(value: Any, depth: int, out: list[dict[str, Any]]) -> None:
    if is_ref(value):
        out.append(value)
    elif depth > 0 and isinstance(value, dict):
        for v in value.values():
            _collect(v, depth - 1, out)
    elif depth > 0 and isinstance(value, list):
        for v in value:
            _collect(v, depth - 1, out)


def _substitute(value: Any, depth: int, values: dict[str, Any]) -> Any:
    if is_ref(value):
        return values[value[REF]]
    if depth > 0 and isinstance(value, dict):
        return {k: _substitute(v, depth - 1, values) for k, v in value.items()}
    if depth > 0 and isinstance(value, list):
        return [_substitute(v, depth - 1, values) for v in value]
    return value


class Payloads:
    """Offload and resolve large JSON values (object store opened lazily, once)."""

    def __init__(self, js: JetStreamContext, threshold_bytes: int = THRESHOLD_BYTES) -> None:
        self.js = js
        self.threshold = threshold_bytes
        self._obj: ObjectStore | None = None

    async def forget_snapshot(self, run_id: str) -> None:
        """Delete a run's offloaded snapshot, if it had one."""
        try:
            await (await self.store()).delete(snapshot_key(run_id))
        except NotFoundError:  # ObjectNotFoundError / ObjectDeletedError: nothing stored
            return

    async def store(self) -> ObjectStore:
        if self._obj is None:
            self._obj = await self.js.object_store(protocol.OBJ_PAYLOADS)
        return self._obj

    async def offload(self, key: str, value: Any) -> Any:
        """``value`` itself when small, else a reference to its stored JSON."""
        data = json.dumps(value, separators=(",", ":")).encode()
        if len(data) <= self.threshold:
            return value
        if len(data) > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"payload of {len(data)} bytes is over the {MAX_PAYLOAD_BYTES} byte limit"
            )
        obj = await self.store()
        await obj.put(key, data)
        return {REF: key, "size": len(data)}

    async def resolve(self, value: Any, *, depth: int = RESOLVE_DEPTH, _nesting: int = 2) -> Any:
        """``value`` with the references the engine may have put in it replaced by values.

        The engine composes outputs without opening them: a step's output (a reference), a
        map's fan-in (a list of instance outputs), a multi-dependency input or a
        multi-sink result (``{step: output}``), and those nested once (a map sink in a
        multi-sink result). References are looked for that deep, and fetched concurrently
        (at most ``MAX_CONCURRENT_FETCHES`` at a time).
        """
        refs: list[dict[str, Any]] = []
        _collect(value, depth, refs)
        if not refs:
            return value
        obj = await self.store()
        limit = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

        async def fetch(key: str) -> Any:
            async with limit:
                result = await obj.get(key)
            return json.loads(result.data or b"null")

        keys = list(dict.fromkeys(r[REF] for r in refs))
        fetched = await asyncio.gather(*(fetch(k) for k in keys))
        if _nesting > 0:
            # A stored value may itself hold references: the engine offloads an input it
            # assembled (a fan-in list) whose items were already offloaded by workers.
            fetched = [await self.resolve(v, depth=depth, _nesting=_nesting - 1) for v in fetched]
        values = dict(zip(keys, fetched, strict=True))
        return _substitute(value, depth, values)


SNAPSHOT_INLINE_MAX = 900 * 1024  # KV values share the 1 MiB message limit


async def encode_run(payloads: Payloads, run: RunState) -> bytes:
    """The KV value of a run snapshot: inline, or a marker pointing at the object store."""
    data = run.model_dump_json(exclude_none=True).encode()
    if len(data) <= SNAPSHOT_INLINE_MAX:
        return data
    obj = await payloads.store()
    key = snapshot_key(run.run_id)
    await obj.put(key, data)
    return json.dumps({SNAPSHOT_REF: key, "status": run.status}).encode()


async def decode_run(payloads: Payloads, data: bytes) -> RunState:
    if data.startswith(b'{"' + SNAPSHOT_REF.encode()):
        obj = await payloads.store()
        stored = await obj.get(json.loads(data)[SNAPSHOT_REF])
        data = stored.data or b"{}"
    return RunState.model_validate_json(data)
