"""Methodology: the engine's fast task-message encoder (``protocol.wire``) against the
pydantic model it stands in for. Hypothesis draws every field (optional ones absent or
set, inputs and metadata of any JSON shape, odd floats and big integers); the fast bytes
must be the JSON of ``TaskMessage(**fields).encode()`` (the same keys in the same order and
equal values: floats may spell their exponent differently, ``1e16`` / ``1e+16``) and read
back as an equal model, or the fast path must decline (``None``) so that the model writes
them. The executor's body is checked
the same way for values only pydantic can write."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dagnats.dag.machine.actions import DispatchTask
from dagnats.engine.executor import _task_body_inline, _task_fields
from dagnats.protocol import wire
from dagnats.protocol.messages import TaskMessage

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=15,
)
names = st.text("abcdefgh-_0123456789", min_size=1, max_size=12)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


task_fields = st.fixed_dictionaries(
    {
        "run_id": names,
        "workflow": names,
        "step_id": names,
        "task": names,
        "attempt": st.integers(1, 50),
        "iteration": st.integers(0, 9),
        "item": _optional(st.integers(0, 10_000)),
        "input": json_values,
        "timeout_ns": _optional(st.integers(1, 2**62)),
        "idempotency_key": names,
        "dedup_id": names,
        "metadata": _optional(st.dictionaries(st.text(max_size=6), json_values, max_size=3)),
        "capabilities": _optional(st.lists(names, max_size=3)),
        "budget_warning": _optional(st.just(True)),
        "budget_final": _optional(st.just(True)),
        "sticky": _optional(st.sampled_from(["soft", "hard"])),
        "control_root": _optional(names),
        "fallback": _optional(st.just(True)),
        "run_retry": _optional(st.integers(1, 9)),
    }
)


@given(task_fields)
def test_the_fast_bytes_are_the_models_bytes(fields: dict[str, Any]) -> None:
    model = TaskMessage(**fields)
    fast = wire.task_body(fields)
    assert fast is not None
    ours, theirs = json.loads(fast), json.loads(model.encode())
    assert list(ours) == list(theirs) and ours == theirs
    assert TaskMessage.model_validate_json(fast) == model


@given(st.integers(2**64, 2**80) | st.just(math.inf) | st.just(b"raw"))
def test_values_only_pydantic_writes_go_through_the_model(value: Any) -> None:
    task = DispatchTask(
        run_id="r",
        workflow="w",
        step_id="s",
        task="t",
        attempt=1,
        iteration=0,
        item=None,
        timeout_ns=None,
        worker_group=None,
        input={"v": [value]},
        dedup_id="d",
        idempotency_key="k",
    )
    body = _task_body_inline(task)
    assert body == TaskMessage(**_task_fields(task)).encode()
