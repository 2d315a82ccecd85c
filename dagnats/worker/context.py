"""``TaskContext``: what a handler sees of its step, and the only door to NATS it needs.

The context holds the rules (key names, JSON encoding, size bounds, stream numbering); a
small ``ContextBackend`` does the I/O. The worker plugs in a NATS backend, the tests an
in-memory one (``dagnats.testing.fake_context``), so a handler behaves the same in both.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python

from dagnats import protocol
from dagnats._nats.checkpoints import decode_value, encode_value
from dagnats.protocol.durations import SECOND, DurationLike, format_duration
from dagnats.protocol.keys import checkpoint_key, signal_key
from dagnats.protocol.logs import MAX_LOG_BYTES, MAX_LOG_LINES, LogLine, cut_line
from dagnats.worker.control import ControlPlane, no_control
from dagnats.worker.task import duration_ns

T = TypeVar("T")

MAX_STREAM_CHUNK_BYTES = 256 * 1024  # real-time output rides core NATS: keep chunks small

TASK_LOGGER = "dagnats.task"
CAPTURE_LEVEL = logging.INFO  # what ctx.logger keeps for `dagnats run logs`


class ContextBackend(Protocol):
    """The I/O a ``TaskContext`` needs; values are already-encoded JSON bytes."""

    async def heartbeat(self) -> None: ...

    async def put_checkpoint(self, key: str, value: bytes) -> None: ...

    async def get_checkpoint(self, key: str) -> bytes | None: ...

    async def publish_stream(self, subject: str, payload: bytes) -> None: ...

    async def wait_signal(self, key: str, timeout_s: float | None) -> bytes:
        """The signal's value; ``TimeoutError`` when none arrives in time."""
        ...

    async def put_signal(self, key: str, value: bytes) -> None: ...


class LogCapture:
    """The lines one attempt logs through ``ctx.logger`` (INFO and above), kept for the
    run's log (``dagnats run logs``): the last :data:`MAX_LOG_LINES` within
    :data:`MAX_LOG_BYTES`, older ones counted in ``dropped``."""

    def __init__(self, attempt: int, item: int | None, iteration: int) -> None:
        self.attempt = attempt
        self.item = item
        self.iteration = iteration
        self.lines: deque[LogLine] = deque()
        self.bytes = 0
        self.dropped = 0

    def add(self, level: int, message: str) -> None:
        line = LogLine(
            ts=datetime.now(UTC),
            level=logging.getLevelName(level),
            attempt=self.attempt,
            item=self.item,
            iteration=self.iteration,
            message=cut_line(message),
        )
        self.lines.append(line)
        self.bytes += line.size
        while len(self.lines) > MAX_LOG_LINES or self.bytes > MAX_LOG_BYTES:
            self.bytes -= self.lines.popleft().size
            self.dropped += 1

    def take(self) -> tuple[list[LogLine], int]:
        """The lines so far and how many were dropped; the capture starts empty again."""
        lines, dropped = list(self.lines), self.dropped
        self.lines.clear()
        self.bytes = self.dropped = 0
        return lines, dropped


def _format(msg: Any, args: tuple[Any, ...], exc_info: Any) -> str:
    try:
        text = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        text = f"{msg} {args!r}"  # logging itself would print a formatting error here
    if exc_info:
        exc = sys.exc_info()[1] if exc_info is True else exc_info
        if isinstance(exc, BaseException):
            text += f" ({type(exc).__name__}: {exc})"
    return text


class TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes messages with ``[run/step#attempt]`` and puts the ids in ``extra``; with a
    ``capture``, INFO and above are also kept for the run's log."""

    def __init__(
        self, logger: logging.Logger, extra: dict[str, Any], capture: LogCapture | None = None
    ) -> None:
        super().__init__(logger, extra)
        self.capture = capture

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.capture is not None and level >= CAPTURE_LEVEL:
            self.capture.add(level, _format(msg, args, kwargs.get("exc_info")))
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        ids = dict(self.extra or {})
        kwargs["extra"] = {**ids, **(kwargs.get("extra") or {})}
        item = f"[{ids['item']}]" if ids.get("item") is not None else ""
        return f"[{ids['run_id']}/{ids['step_id']}{item}#{ids['attempt']}] {msg}", kwargs


class TaskContext:
    """Per task message: the step's identity, its raw input and the durable helpers.

    ``attempt`` is 1-based; ``iteration`` counts agent-loop iterations from 0; ``item`` is
    the map instance index (``None`` outside a map); ``idempotency_key`` is stable across
    retries and redeliveries of this step, for external side effects.
    """

    def __init__(
        self,
        message: protocol.TaskMessage,
        backend: ContextBackend,
        *,
        control: ControlPlane | None = None,
    ) -> None:
        self.run_id: str = message.run_id
        self.step_id: str = message.step_id
        self.task: str = message.task
        self.workflow: str = message.workflow
        self.attempt: int = message.attempt
        self.iteration: int = message.iteration
        self.item: int | None = message.item
        self.input: Any = message.input
        self.idempotency_key: str = message.idempotency_key
        # The step's metadata (Go never delivered it; dagnats does).
        self.metadata: dict[str, Any] = dict(message.metadata or {})
        # The step's required_capabilities, as declared in the definition.
        self.capabilities: frozenset[str] = frozenset(message.capabilities or ())
        # An agent loop at or past budget_warn_at: time to wrap up.
        self.budget_warning: bool = bool(message.budget_warning)
        # An agent loop at budget_force_at: a Continue now is refused; return a result.
        self.budget_final: bool = bool(message.budget_final)
        self.log_capture = LogCapture(self.attempt, self.item, self.iteration)
        self.logger: TaskLogger = TaskLogger(
            logging.getLogger(TASK_LOGGER),
            {
                "run_id": self.run_id,
                "step_id": self.step_id,
                "attempt": self.attempt,
                "item": self.item,
                "task": self.task,
            },
            self.log_capture,
        )
        self._backend = backend
        self._stream_seq = 0
        self._control = control
        self.checkpointed = False
        """Whether this attempt stored or found a checkpoint: its result says so, and the
        run's end purges checkpoints only if some attempt did."""

    @property
    def control(self) -> ControlPlane:
        """The control plane (register and start child workflows), for handlers whose step
        declares ``required_capabilities: ["control-plane"]``; else ``CapabilityError``."""
        if self._control is None:
            raise no_control(self.step_id, self.task)
        return self._control

    def __repr__(self) -> str:
        return (
            f"<TaskContext run={self.run_id} step={self.step_id} task={self.task} "
            f"attempt={self.attempt} iteration={self.iteration} item={self.item}>"
        )

    async def heartbeat(self) -> None:
        """Tell the server the task is alive now (the worker also does this every 10 s)."""
        await self._backend.heartbeat()

    @property
    def checkpoint_key(self) -> str:
        return checkpoint_key(self.run_id, self.step_id, self.item)

    async def checkpoint(self, value: Any) -> None:
        """Store ``value`` (JSON) durably; the next attempt of this step can load it."""
        self.checkpointed = True  # before the write: a failed write may still be stored
        await self._backend.put_checkpoint(
            self.checkpoint_key, encode_value(value, f"checkpoint of step {self.step_id!r}")
        )

    @overload
    async def load_checkpoint(self, model: type[T]) -> T | None: ...

    @overload
    async def load_checkpoint(self, model: None = None) -> Any: ...

    async def load_checkpoint(self, model: Any = None) -> Any:
        """The last checkpoint of this step (validated into ``model`` if given), or ``None``."""
        raw = await self._backend.get_checkpoint(self.checkpoint_key)
        if raw is None:
            return None
        self.checkpointed = True
        value = decode_value(raw)
        if model is None:
            return value
        return TypeAdapter(model).validate_python(value)

    async def put_stream(self, data: Any) -> None:
        """Publish a chunk of real-time output to ``stream.<run_id>.<step_id>`` (ephemeral).

        Chunks are numbered from 1 per context so watchers can order them and spot gaps.
        """
        seq = self._stream_seq + 1
        try:
            body: dict[str, Any] = {"seq": seq, "data": to_jsonable_python(data)}
        except PydanticSerializationError as exc:
            raise TypeError(
                f"stream chunk of type {type(data).__name__} cannot be sent as JSON: {exc}"
            ) from exc
        if self.item is not None:
            body["item"] = self.item
        payload = json.dumps(body, separators=(",", ":")).encode()
        if len(payload) > MAX_STREAM_CHUNK_BYTES:
            raise ValueError(
                f"stream chunk of step {self.step_id!r} is {len(payload)} bytes; the limit is "
                f"{MAX_STREAM_CHUNK_BYTES} bytes (256 KiB): split it into smaller chunks"
            )
        await self._backend.publish_stream(
            protocol.stream_subject(self.run_id, self.step_id), payload
        )
        self._stream_seq = seq

    async def wait_for_signal(self, name: str, timeout: DurationLike | None = None) -> Any:
        """Wait for the run's signal ``name`` and return its data.

        A signal sent before the wait began is returned at once. ``timeout`` (``"1h"``, a
        ``timedelta`` or seconds) raises ``TimeoutError``; without it the wait is bounded by
        the step's own timeout. The worker keeps heartbeating the task meanwhile.
        """
        key = signal_key(self.run_id, name)
        timeout_ns = None if timeout is None else duration_ns(timeout, "timeout")
        try:
            raw = await self._backend.wait_signal(
                key, None if timeout_ns is None else timeout_ns / SECOND
            )
        except TimeoutError as exc:
            if timeout_ns is None:
                raise
            raise TimeoutError(
                f"signal {name!r} for run {self.run_id} did not arrive within "
                f"{format_duration(timeout_ns)}"
            ) from exc
        return decode_value(raw)

    async def send_signal(self, run_id: str, name: str, data: Any = None) -> None:
        """Send signal ``name`` with ``data`` to run ``run_id`` (any run, not only this one)."""
        key = signal_key(run_id, name)
        await self._backend.put_signal(key, encode_value(data, f"signal {name!r}"))
