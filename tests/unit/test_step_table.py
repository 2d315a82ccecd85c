"""The machine's one table of step types covers every step type of the definition models."""

from __future__ import annotations

from typing import get_args

from dagnats.dag.definition.models import STEP_TYPES, TASK_STEP_TYPES, StepType
from dagnats.dag.machine._table import STEP_KINDS


def test_every_step_type_has_a_table_entry() -> None:
    assert set(STEP_KINDS) == set(get_args(StepType)) == set(STEP_TYPES)


def test_worker_task_types_match_the_definition_rules() -> None:
    # The validation rules require a task name for exactly the types a worker runs.
    assert {t for t, k in STEP_KINDS.items() if k.worker_task} == set(TASK_STEP_TYPES)
