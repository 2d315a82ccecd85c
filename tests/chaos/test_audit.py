"""Methodology: the chaos audit itself, on made-up histories and ledgers, so that its zeros
mean something: a second event of the same type, step, attempt, iteration and item is a
duplicate; a retry's new attempt or another map item is not; the ledger counts calls per
(run, step, attempt) and skips a line cut short by a kill."""

from __future__ import annotations

from pathlib import Path

from dagnats.protocol import events as ev
from dagnats.protocol.events import Event
from tests.chaos.harness import ledger_calls, transitions


def _e(type_: str, step: str | None = None, attempt: int | None = None, **kw: int) -> Event:
    return Event(type=type_, run_id="r", step_id=step, attempt=attempt, **kw)


def test_a_repeated_transition_is_a_duplicate_and_a_new_attempt_is_not() -> None:
    clean = [
        _e(ev.WORKFLOW_STARTED),
        _e(ev.STEP_FAILED, "a", 1),
        _e(ev.STEP_COMPLETED, "a", 2),
        _e(ev.STEP_COMPLETED, "m", 1, item=0),
        _e(ev.STEP_COMPLETED, "m", 1, item=1),
        _e(ev.WORKFLOW_COMPLETED),
    ]
    assert transitions(clean) == []
    doubled = [*clean, _e(ev.STEP_COMPLETED, "m", 1, item=1), _e(ev.WORKFLOW_COMPLETED)]
    assert sorted(transitions(doubled)) == [
        "step.completed/m#1 x2",
        "workflow.completed/None#None x2",
    ]


def test_the_ledger_counts_calls_per_attempt(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.write_text("r1 a 1 10\nr1 a 1 11\nr1 a 2 11\nr2 a 1 10\nr2 b")  # last line cut
    calls = ledger_calls(ledger)
    assert calls == {("r1", "a", "1"): 2, ("r1", "a", "2"): 1, ("r2", "a", "1"): 1}
    assert ledger_calls(tmp_path / "missing.txt") == {}
