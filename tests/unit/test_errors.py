"""Methodology: the exception tree of dagnats.errors, as isinstance facts and as its drawing.

The docstring's drawing is the documentation users read, so the test checks that every
public exception is drawn and that the drawing's parents are the real ones.
"""

from __future__ import annotations

import builtins
import inspect
import re

import pytest

import dagnats
from dagnats import errors
from dagnats.dag.machine import state
from dagnats.protocol.durations import DurationError


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (dagnats.DefinitionError, (dagnats.DagnatsError, ValueError)),
        (dagnats.InputValidationError, (dagnats.DagnatsError, ValueError)),
        (dagnats.NotFoundError, (dagnats.DagnatsError, LookupError)),
        (dagnats.WorkflowNotFoundError, (dagnats.NotFoundError, LookupError)),
        (dagnats.RunNotFoundError, (dagnats.NotFoundError, LookupError)),
        (dagnats.RunFailedError, (dagnats.RunError, dagnats.DagnatsError)),
        (dagnats.RunCancelledError, (dagnats.RunError, dagnats.DagnatsError)),
        (dagnats.NatsUnavailableError, (dagnats.DagnatsError,)),
        (dagnats.ApiError, (dagnats.DagnatsError,)),
        (dagnats.ApprovalError, (dagnats.DagnatsError,)),
        (dagnats.ServerError, (dagnats.DagnatsError,)),
        (dagnats.NonRetryableError, (dagnats.TaskError, dagnats.DagnatsError)),
        (dagnats.RetryAfter, (dagnats.TaskError, dagnats.DagnatsError)),
        (dagnats.DurationError, (ValueError,)),
    ],
)
def test_subclasses(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(cls, base), (cls, base)


def test_instances_are_caught_by_their_builtin() -> None:
    with pytest.raises(ValueError):
        raise dagnats.DefinitionError("bad", step_id="a", field="timeout")
    with pytest.raises(LookupError):
        raise dagnats.RunNotFoundError("run x not found")
    err = dagnats.RunFailedError("failed", run_id="r", step_id="a", error="boom")
    assert isinstance(err, dagnats.RunError) and (err.run_id, err.status) == ("r", "failed")
    assert not isinstance(dagnats.NatsUnavailableError("down"), TimeoutError | LookupError)


def test_builder_errors_are_value_errors_too() -> None:
    with pytest.raises(ValueError, match="duplicate step id"):
        wf = dagnats.Workflow("w")
        wf.step("a")
        wf.step("a")


def _public_exceptions() -> dict[str, type[BaseException]]:
    return {
        name: obj
        for name in dagnats.__all__
        if isinstance(obj := getattr(dagnats, name), type) and issubclass(obj, BaseException)
    }


def test_every_public_exception_is_drawn_under_its_parent() -> None:
    doc = errors.__doc__ or ""
    drawing = [line for line in doc.splitlines() if re.search(r"[├└]── ", line)]
    depth_of: dict[str, int] = {}
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = [(0, "Exception")]  # the root line has no branch
    for line in drawing:
        m = re.search(r"[├└]── (\w+)", line)
        assert m is not None
        depth = m.start(1)
        name = m.group(1)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
        depth_of[name] = depth
    public = _public_exceptions()
    assert set(public) <= set(depth_of), set(public) - set(depth_of)
    for name, cls in public.items():
        parent = parents[name]
        expected = getattr(builtins, parent, None) or getattr(dagnats, parent)
        assert cls.__bases__[0] is expected, (name, parent)


def test_every_exception_class_in_errors_is_public() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert defined <= set(dagnats.__all__)
    assert DurationError is dagnats.DurationError


def test_the_run_failure_model_does_not_shadow_the_exception() -> None:
    assert not hasattr(state, "RunError")
    run = state.RunState(
        run_id="r", workflow="w", status="failed", error=state.RunFailure(message="boom")
    )
    # The wire name of the field is unchanged; only the class was renamed.
    data = run.model_dump(mode="json")
    assert data["error"] == {"message": "boom", "step_id": None, "type": "Error"}
    assert state.RunState.model_validate(data).error == state.RunFailure(message="boom")
