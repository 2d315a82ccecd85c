"""Methodology: the terminal announcement (``protocol.ended``) says what ``result()`` would
have read from the whole snapshot. Each state the machine can end in is announced, parsed
and turned into the outcome; the same outcome must come from the snapshot itself. The older
forms (the whole snapshot, its object-store marker) still parse; a body too large for one
message is not sent; client-made ids are recognised as fresh only when shaped and timed so.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagnats.client.handle import ended_of, outcome, outcome_of
from dagnats.dag.machine.state import RunFailure, RunState
from dagnats.errors import RunCancelledError, RunFailedError
from dagnats.protocol.ended import (
    ENDED_INLINE_MAX,
    SNAPSHOT_REF,
    ended_body,
    parse_ended,
    stored_body,
)
from dagnats.protocol.ids import is_fresh_run_id, new_run_id

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _announced(state: RunState) -> Any:
    error = state.error.model_dump(exclude_none=True) if state.error else None
    body = ended_body(
        state.run_id,
        state.status,
        output=state.output,
        error=error,
        failed_step=state.failed_step,
    )
    assert body is not None
    return parse_ended(body, state.run_id)


def _result(thunk: Any) -> tuple[str, Any]:
    try:
        return "value", thunk()
    except (RunFailedError, RunCancelledError) as exc:
        return type(exc).__name__, (str(exc), exc.status, getattr(exc, "step_id", None))


@given(output=json_values)
def test_a_completed_run_announces_its_output(output: Any) -> None:
    state = RunState(run_id="r1", workflow="w", status="completed", output=output)
    ended = _announced(state)
    assert not ended.snapshot
    assert (
        _result(lambda: outcome_of(ended))
        == _result(lambda: outcome(state))
        == (
            "value",
            output,
        )
    )


@pytest.mark.parametrize(
    "state",
    [
        RunState(
            run_id="r2",
            workflow="w",
            status="failed",
            error=RunFailure(message="boom", step_id="s1", type="ValueError"),
            failed_step="s1",
        ),
        RunState(run_id="r3", workflow="w", status="failed", failed_step="s2"),
        RunState(run_id="r4", workflow="w", status="compensated", failed_step="s3"),
        RunState(run_id="r5", workflow="w", status="cancelled"),
    ],
)
def test_a_run_that_did_not_complete_raises_the_same_error(state: RunState) -> None:
    announced = _result(lambda: outcome_of(_announced(state)))
    assert announced[0] != "value"
    assert announced == _result(lambda: outcome(state))


def test_the_older_forms_parse() -> None:
    state = RunState(run_id="r6", workflow="w", status="completed", output={"a": [1, 2]})
    whole = parse_ended(state.model_dump_json().encode(), "r6")
    assert (whole.status, whole.output, whole.snapshot) == ("completed", {"a": [1, 2]}, False)
    assert whole == ended_of(state)
    marker = json.dumps({SNAPSHOT_REF: "snapshots/r6", "status": "completed"}).encode()
    assert parse_ended(marker, "r6").snapshot


def test_the_stored_announcement_sends_the_reader_to_the_snapshot() -> None:
    ended = parse_ended(stored_body("r7", "failed"), "r7")
    assert (ended.run_id, ended.status, ended.snapshot) == ("r7", "failed", True)


def test_a_result_too_large_for_one_message_is_not_sent() -> None:
    assert ended_body("r8", "completed", output="x" * ENDED_INLINE_MAX) is None


@pytest.mark.parametrize("data", [b"not json", b"[1]", b'{"run_id": "r9"}', b'{"status": 3}'])
def test_a_body_that_is_not_an_announcement_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="r9"):
        parse_ended(data, "r9")


def test_only_a_just_made_id_is_fresh() -> None:
    assert is_fresh_run_id(new_run_id())
    old = f"{int((time.time() - 3600) * 1000):012x}{'a' * 16}"
    assert not is_fresh_run_id(old)
    assert not is_fresh_run_id("my-run")
    assert not is_fresh_run_id(new_run_id().upper())
    assert not is_fresh_run_id(new_run_id() + "0")
