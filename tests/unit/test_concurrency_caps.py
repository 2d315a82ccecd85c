"""Methodology: the bounds of max_task_concurrency and concurrency.max_runs at and just past
the cap, through load_definition as a registration would see them."""

from __future__ import annotations

import pytest

from dagnats.dag.definition.models import MAX_CONCURRENCY_LIMIT
from dagnats.dag.definition.rules import load_definition
from dagnats.errors import DefinitionError


def test_cap_is_ten_thousand() -> None:
    assert MAX_CONCURRENCY_LIMIT == 10_000


def test_max_task_concurrency_at_the_cap_is_accepted_and_past_it_rejected() -> None:
    ok = load_definition({"name": "w", "steps": [{"id": "a", "max_task_concurrency": 10_000}]})
    assert ok.steps[0].max_task_concurrency == 10_000
    with pytest.raises(DefinitionError, match=r"max_task_concurrency.*<= 10000"):
        load_definition({"name": "w", "steps": [{"id": "a", "max_task_concurrency": 10_001}]})


def test_max_runs_at_the_cap_is_accepted_and_past_it_rejected() -> None:
    ok = load_definition({"name": "w", "steps": [{"id": "a"}], "concurrency": {"max_runs": 10_000}})
    assert ok.concurrency is not None and ok.concurrency.max_runs == 10_000
    with pytest.raises(DefinitionError, match=r"max_runs.*<= 10000"):
        load_definition({"name": "w", "steps": [{"id": "a"}], "concurrency": {"max_runs": 100_000}})
