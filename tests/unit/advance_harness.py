"""A tiny driver for ``advance`` in unit tests: feeds events, keeps state, checks purity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.actions import Action, DispatchTask, RecordEvent, ScheduleTimer
from dagnats.dag.machine.advance import advance
from dagnats.dag.machine.state import RunState, StepState
from dagnats.protocol.events import Event

T0 = datetime(2030, 1, 1, tzinfo=UTC)
A = TypeVar("A")
REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def reference(name: str) -> WorkflowDef:
    """A reference workflow file, loaded as the brief asks: json + ``model_validate``."""
    return WorkflowDef.model_validate(json.loads((REFERENCE / name).read_text()))


def wf(*steps: dict[str, Any], **top: Any) -> WorkflowDef:
    """A validated definition from step dicts (``{"id": "a"}`` is a normal step)."""
    return load_definition({"name": "w", "steps": list(steps), **top})


def of(actions: list[Action], cls: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, cls)]


def records(actions: list[Action], type_: str | None = None) -> list[Event]:
    out = [a.event for a in actions if isinstance(a, RecordEvent)]
    return [e for e in out if type_ is None or e.type == type_]


def dispatched(actions: list[Action]) -> list[str]:
    """Step ids (``step[i]`` for map instances) of the tasks dispatched, in order."""
    return [
        d.step_id if d.item is None else f"{d.step_id}[{d.item}]" for d in of(actions, DispatchTask)
    ]


class Sim:
    """Drive one run. Every call advances a 1-second clock unless ``ts`` is given."""

    def __init__(self, defn: WorkflowDef, run_id: str = "r1") -> None:
        self.defn = defn
        self.run_id = run_id
        self.run: RunState | None = None
        self.now = T0
        self.seq = 0
        self.last: list[Action] = []
        self.all: list[Action] = []

    @property
    def state(self) -> RunState:
        assert self.run is not None
        return self.run

    def step(self, sid: str) -> StepState:
        return self.state.steps[sid]

    def send(
        self,
        type_: str,
        step: str | None = None,
        *,
        attempt: int | None = None,
        iteration: int | None = None,
        item: int | None = None,
        data: Any = None,
        ts: datetime | None = None,
    ) -> list[Action]:
        self.seq += 1
        self.now = ts if ts is not None else self.now + timedelta(seconds=1)
        event = Event(
            type=type_,
            run_id=self.run_id,
            step_id=step,
            attempt=attempt,
            iteration=iteration,
            item=item,
            ts=self.now,
            data=data,
            seq=self.seq,
        )
        before = self.run.model_dump() if self.run is not None else None
        new, actions = advance(self.defn, self.run, event)
        if self.run is not None:
            assert self.run.model_dump() == before, "advance mutated its argument"
        self.run = new
        self.last = actions
        self.all.extend(actions)
        return actions

    # --- shorthands ----------------------------------------------------------------------

    def start(self, run_input: Any = None, **extra: Any) -> list[Action]:
        return self.send("workflow.started", data={"input": run_input, **extra})

    def _attempt(self, sid: str, item: int | None) -> tuple[int, int]:
        st = self.step(sid)
        if item is not None:
            assert st.items is not None
            return st.items[item].attempts, 0
        return st.attempts, st.iteration

    def started(self, sid: str, *, item: int | None = None) -> list[Action]:
        attempt, iteration = self._attempt(sid, item)
        return self.send(
            "step.started", sid, attempt=attempt, iteration=iteration, item=item, data={}
        )

    def complete(self, sid: str, output: Any = None, *, item: int | None = None) -> list[Action]:
        attempt, iteration = self._attempt(sid, item)
        return self.send(
            "step.completed",
            sid,
            attempt=attempt,
            iteration=iteration,
            item=item,
            data={"output": output},
        )

    def fail(
        self,
        sid: str,
        error: str = "boom",
        *,
        retryable: bool = True,
        item: int | None = None,
        error_type: str = "Error",
        retry_after_ns: int | None = None,
    ) -> list[Action]:
        attempt, iteration = self._attempt(sid, item)
        data: dict[str, Any] = {"error": error, "error_type": error_type, "retryable": retryable}
        if retry_after_ns is not None:
            data["retry_after_ns"] = retry_after_ns
        return self.send(
            "step.failed", sid, attempt=attempt, iteration=iteration, item=item, data=data
        )

    def cont(self, sid: str, value: Any) -> list[Action]:
        attempt, iteration = self._attempt(sid, None)
        return self.send(
            "step.continue", sid, attempt=attempt, iteration=iteration, data={"value": value}
        )

    def fire(self, timer: ScheduleTimer, *, at: datetime | None = None) -> list[Action]:
        """Deliver a timer as the timer service does (``timer.fired`` with kind in data)."""
        data = {**timer.data, "kind": timer.kind}
        return self.send(
            "timer.fired",
            timer.step_id,
            attempt=data.get("attempt"),
            iteration=data.get("iteration"),
            item=data.get("item"),
            data=data,
            ts=at if at is not None else max(timer.fire_at, self.now),
        )

    def timer(self, kind: str, actions: list[Action] | None = None) -> ScheduleTimer:
        found = [t for t in of(self.last if actions is None else actions, ScheduleTimer)]
        found = [t for t in found if t.kind == kind]
        assert len(found) == 1, f"expected one {kind} timer, got {found}"
        return found[0]

    def statuses(self) -> dict[str, str]:
        return {sid: st.status for sid, st in self.state.steps.items()}
