"""Methodology: a run's end purges checkpoints only if an attempt may have stored one. Runs
are driven through ``advance`` (the harness checks purity) with results that say they did
not checkpoint (or say nothing), that they did, and with an attempt that ended without a
result (worker lost) or was still in flight at the end (a cancel)."""

from __future__ import annotations

from typing import Any

import pytest

from dagnats.dag.machine.actions import FinishRun
from tests.unit.advance_harness import Sim, of, wf


def _finish(sim: Sim) -> FinishRun:
    (finish,) = of(sim.all, FinishRun)
    return finish


def _two_steps() -> Sim:
    sim = Sim(wf({"id": "a"}, {"id": "b", "depends_on": ["a"]}))
    sim.start(1)
    return sim


def _result(sim: Sim, sid: str, checkpointed: Any) -> None:
    attempt, iteration = sim._attempt(sid, None)
    data: dict[str, Any] = {"output": 1}
    if checkpointed is not None:
        data["checkpointed"] = checkpointed
    sim.send("step.completed", sid, attempt=attempt, iteration=iteration, data=data)


@pytest.mark.parametrize("said", [False, None], ids=["false", "absent"])
def test_results_that_stored_no_checkpoint_skip_the_purge(said: Any) -> None:
    sim = _two_steps()
    _result(sim, "a", said)
    _result(sim, "b", False)
    assert sim.state.status == "completed"
    assert not sim.state.checkpoints
    assert _finish(sim).checkpoints is False


def test_one_result_that_checkpointed_keeps_the_purge() -> None:
    sim = _two_steps()
    _result(sim, "a", True)
    _result(sim, "b", False)
    assert sim.state.checkpoints
    assert _finish(sim).checkpoints is True


def test_an_attempt_lost_without_a_result_keeps_the_purge() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 2, "initial_delay": "1s"}}))
    sim.start(1)
    attempt, iteration = sim._attempt("a", None)
    sim.send("step.worker_lost", "a", attempt=attempt, iteration=iteration, data={"worker": "w1"})
    assert sim.state.checkpoints


def test_an_attempt_in_flight_at_the_end_keeps_the_purge() -> None:
    sim = _two_steps()
    _result(sim, "a", False)
    sim.send("workflow.cancel_requested", data={"reason": "stop"})
    assert sim.state.status == "cancelled"
    assert not sim.state.checkpoints  # no result said so, but "b" was still running
    assert _finish(sim).checkpoints is True
