"""The machine's one table of step types covers every step type of the definition models."""

from __future__ import annotations

from typing import get_args

import pytest

from dagnats.dag.definition.models import STEP_TYPES, TASK_STEP_TYPES, StepType
from dagnats.dag.machine._table import kind, kinds


def test_every_step_type_has_a_table_entry() -> None:
    assert set(kinds()) == set(get_args(StepType)) == set(STEP_TYPES)


def test_worker_task_types_match_the_definition_rules() -> None:
    # The validation rules require a task name for exactly the types a worker runs.
    assert {t for t, k in kinds().items() if k.worker_task} == set(TASK_STEP_TYPES)


def test_an_unknown_step_type_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="teleport"):
        kind("teleport")
