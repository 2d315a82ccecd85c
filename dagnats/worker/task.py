"""``Task``: a registered handler that stays callable with its own signature.

The decorator validates the handler once, at import time, so a mistake (a bad name, a
signature the worker cannot call, a type pydantic cannot validate) is an error where the
handler is defined, not a failed step hours later. The pydantic adapters used on every
message are built here, once per task.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, Union, get_args, get_origin

from pydantic import TypeAdapter

from dagnats.protocol.durations import DurationLike, to_ns
from dagnats.protocol.keys import check_name as check_name
from dagnats.worker.outcomes import Continue

P = ParamSpec("P")
R = TypeVar("R")


def duration_ns(value: DurationLike, what: str = "duration") -> int:
    """Nanoseconds from a duration given in Python: a number is seconds (the one rule)."""
    return to_ns(value, what)


def _is_continue(tp: Any) -> bool:
    return tp is Continue or get_origin(tp) is Continue


def split_continue(tp: Any) -> tuple[Any, Any]:
    """Split a return annotation into (plain output type, ``Continue`` value type).

    ``str | Continue[Plan]`` -> ``(str, Plan)``. Either side is ``None`` when absent or when
    the annotation does not say (a bare ``Continue``).
    """
    if _is_continue(tp):
        args = get_args(tp)
        return None, (args[0] if args else None)
    if get_origin(tp) in (Union, types.UnionType):
        members = get_args(tp)
        plain = [m for m in members if not _is_continue(m)]
        conts = [m for m in members if _is_continue(m)]
        cont_type = None
        if conts and get_args(conts[0]):
            cont_type = get_args(conts[0])[0]
        if len(plain) == len(members):
            return tp, None
        out: Any = plain[0] if len(plain) == 1 else Union[tuple(plain)]  # noqa: UP007
        return out, cont_type
    return tp, None


def _unwrap_awaitable(tp: Any) -> tuple[Any, bool]:
    """``Awaitable[X]``/``Coroutine[..., X]`` -> ``(X, True)``; anything else unchanged."""
    origin = get_origin(tp)
    if origin in (Awaitable, Coroutine, typing.Awaitable, typing.Coroutine):
        args = get_args(tp)
        return (args[-1] if args else Any), True
    return tp, False


def _adapter(tp: Any, fn_name: str, role: str) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(tp)
    except Exception as exc:
        raise TypeError(
            f"handler {fn_name!r}: its {role} type {tp!r} cannot be used with pydantic: {exc}"
        ) from exc


class Task(Generic[P, R]):
    """A handler registered with ``@worker.task()``; calling it calls the handler.

    ``task_name`` is what workflows reference; ``input_type``/``output_type`` are the
    annotations the worker validates and serialises with; ``timeout_ns`` is the default
    deadline when the task message carries none.
    """

    __name__: str  # copied from the handler, like __doc__ and __wrapped__
    __wrapped__: Callable[P, R]

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        timeout: DurationLike | None = None,
        concurrency: int | None = None,
        localns: dict[str, Any] | None = None,
    ) -> None:
        fn_name = getattr(fn, "__name__", None) or type(fn).__name__
        self.fn = fn
        self.task_name: str = check_name(name if name is not None else fn_name, "task name")
        self.timeout_ns: int | None = (
            None if timeout is None else duration_ns(timeout, f"timeout of task {fn_name!r}")
        )
        if self.timeout_ns == 0:
            raise ValueError(f"timeout of task {self.task_name!r} must be positive")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValueError(
                f"concurrency of task {self.task_name!r} must be an integer >= 1, "
                f"got {concurrency!r}"
            )
        self.concurrency: int | None = concurrency
        self.takes_input, input_param = _check_signature(fn, fn_name)
        hints = _type_hints(fn, fn_name, localns)
        self.input_type: Any = None
        if self.takes_input:
            assert input_param is not None
            self.input_type = hints.get(input_param, Any)
        returned = hints.get("return")
        self.output_type: Any
        self.output_type, returns_awaitable = _unwrap_awaitable(returned)
        # A plain function annotated as returning an awaitable is awaited in the loop, not
        # run in a thread (a thread would hand back an un-awaited coroutine).
        self.is_async: bool = inspect.iscoroutinefunction(fn) or returns_awaitable
        plain, cont = split_continue(self.output_type)
        self.input_adapter: TypeAdapter[Any] | None = (
            _adapter(self.input_type, fn_name, "input") if self.takes_input else None
        )
        self.output_adapter: TypeAdapter[Any] | None = (
            None if plain is None else _adapter(plain, fn_name, "return")
        )
        self.continue_adapter: TypeAdapter[Any] | None = (
            None if cont is None else _adapter(cont, fn_name, "Continue value")
        )
        self._input_schema: dict[str, Any] | bool | None = False  # False: not computed yet
        functools.update_wrapper(self, fn)

    @property
    def input_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of the input this handler accepts, as the worker directory shows
        it (so ``dagnats approve`` can tell data a step would refuse); ``None`` when any
        input does, or when the schema cannot be drawn or is larger than
        ``MAX_INPUT_SCHEMA_BYTES``."""
        if self._input_schema is False:
            self._input_schema = _schema_of(self.input_adapter)
        return self._input_schema if isinstance(self._input_schema, dict) else None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.task_name!r} -> {getattr(self.fn, '__qualname__', self.fn)!r}>"


MAX_INPUT_SCHEMA_BYTES = 16 * 1024  # the directory entry is re-put every 30 s


def _schema_of(adapter: TypeAdapter[Any] | None) -> dict[str, Any] | None:
    if adapter is None:
        return None
    try:
        schema = adapter.json_schema()
    except Exception:  # noqa: BLE001 - a type without a JSON Schema: nothing to show
        return None
    if not schema or len(json.dumps(schema, default=str)) > MAX_INPUT_SCHEMA_BYTES:
        return None
    return schema


def _check_signature(fn: Callable[..., Any], fn_name: str) -> tuple[bool, str | None]:
    """(takes an input, the input parameter's name) for a ``(ctx)``/``(ctx, input)`` handler."""
    if not callable(fn):
        raise TypeError(f"@worker.task() needs a function, got {type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"handler {fn_name!r}: cannot read its signature: {exc}") from exc
    positional: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p)
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            raise TypeError(
                f"handler {fn_name!r}: keyword-only parameter {p.name!r} has no default; "
                "a handler is called as (ctx) or (ctx, input)"
            )
    required = [p for p in positional if p.default is p.empty]
    if not positional or len(required) > 2:
        raise TypeError(f"handler {fn_name!r} must take (ctx) or (ctx, input), got {fn_name}{sig}")
    if len(positional) >= 2 and (len(required) == 2 or len(positional) == 2):
        return True, positional[1].name
    return False, None


def _type_hints(
    fn: Callable[..., Any], fn_name: str, localns: dict[str, Any] | None
) -> dict[str, Any]:
    # With ``from __future__ import annotations`` every annotation is a string; the caller's
    # locals (captured by the decorator) resolve types defined inside a function or test.
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
    try:
        return typing.get_type_hints(target, localns=localns, include_extras=True)
    except Exception as exc:
        raise TypeError(
            f"handler {fn_name!r}: cannot resolve its type annotations ({exc}); define the "
            "types it uses before the handler"
        ) from exc
