"""Trigger definitions, cron matching and the respond step's answer: pure, no NATS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dagnats
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.definition.triggers import parse_trigger, split_triggers
from dagnats.dag.machine._steps import narrow
from dagnats.dag.machine.actions import Respond
from dagnats.errors import DefinitionError
from dagnats.protocol import dedup
from dagnats.protocol.control import DebounceHold, TriggerFire, TriggerState
from dagnats.protocol.ids import cron_run_id
from dagnats.server.http.hooks import sign, signature_ok
from dagnats.server.schedules import parse_run_at
from dagnats.server.triggers import cron_matches, unix_minute
from tests.unit.advance_harness import Sim


def test_cron_in_a_time_zone_across_daylight_saving() -> None:
    t = parse_trigger(
        {
            "id": "t",
            "workflow_id": "w",
            "cron": {"expression": "30 2 * * *", "timezone": "Europe/Berlin"},
        }
    )
    # 02:30 Berlin = 00:30 UTC in summer (CEST), 01:30 UTC in winter (CET).
    assert cron_matches(t, unix_minute(datetime(2026, 7, 1, 0, 30, tzinfo=UTC)))
    assert cron_matches(t, unix_minute(datetime(2026, 12, 1, 1, 30, tzinfo=UTC)))
    assert not cron_matches(t, unix_minute(datetime(2026, 12, 1, 0, 30, tzinfo=UTC)))
    # 2026-03-29: 02:30 does not exist in Berlin (02:00 -> 03:00): it fires once, at the
    # jump (03:00 CEST = 01:00 UTC), as croniter (and cronie) have it.
    day = [unix_minute(datetime(2026, 3, 29, 0, 0, tzinfo=UTC)) + m for m in range(24 * 60)]
    fired = [m for m in day if cron_matches(t, m)]
    assert fired == [unix_minute(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))]


def test_posix_day_of_month_or_day_of_week() -> None:
    t = parse_trigger({"id": "t", "workflow_id": "w", "cron": {"expression": "0 0 13 * 5"}})
    fridays_or_13th = [datetime(2026, 11, 13, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)]
    assert all(cron_matches(t, unix_minute(d)) for d in fridays_or_13th)
    assert not cron_matches(t, unix_minute(datetime(2026, 11, 19, tzinfo=UTC)))
    assert t.cron is not None
    assert [d.day for d in t.cron.next_fires(datetime(2026, 11, 12, tzinfo=UTC), 3)] == [13, 20, 27]


def test_dedup_and_run_ids_of_a_cron_minute_are_stable() -> None:
    assert dedup.trigger_fire_id("nightly", 29_000_000) == "trigger.nightly.29000000"
    rid = cron_run_id("nightly", 29_000_000)
    assert rid == cron_run_id("nightly", 29_000_000) != cron_run_id("nightly", 29_000_001)
    assert rid.startswith(f"{29_000_000 * 60_000:012x}") and len(rid) == 28


def test_trigger_state_keeps_a_bounded_history() -> None:
    state = TriggerState()
    for m in range(80):
        state = state.with_fire(TriggerFire(ts=datetime.now(UTC), kind="cron", minute=m))
    assert len(state.fires) == 50 and state.last_minute == 79


def test_debounce_due_is_capped_by_its_timeout() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    last = datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC)
    hold = DebounceHold(
        trigger_id="t",
        key_hash="k",
        kind="webhook",
        first_at=first,
        last_at=last,
        period_ns=5 * 10**9,
        timeout_ns=10 * 10**9,
    )
    assert hold.due_at() == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    hold = hold.model_copy(update={"timeout_ns": None})
    assert hold.due_at() == datetime(2026, 1, 1, 0, 0, 14, tzinfo=UTC)


def test_signatures() -> None:
    body = b'{"a":1}'
    assert signature_ok("k", body, sign("k", body))
    assert not signature_ok("k", body, sign("other", body))
    assert not signature_ok("k", body, None) and not signature_ok("k", body, "md5=abc")


def test_run_at_rules() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_run_at("2026-06-01T12:00:00.5Z", now=now) is None  # within a second: now
    at = parse_run_at("2026-06-01T14:00:00+02:00", now=now - timedelta(seconds=5))
    assert at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(dagnats.ApiError, match="in the past"):
        parse_run_at("2026-06-01T11:59:00Z", now=now)


def test_workflow_file_triggers_get_stable_ids_and_the_workflow_name() -> None:
    body, triggers = split_triggers(
        {"name": "wf", "steps": [{"id": "a"}], "triggers": [{"subject": {"subject": "x"}}]}
    )
    assert "triggers" not in body
    assert [(t.id, t.workflow_id, t.source) for t in triggers] == [
        ("wf-subject-0", "wf", "workflow")
    ]
    with pytest.raises(DefinitionError, match="'triggers' must be a list"):
        split_triggers({"name": "wf", "triggers": {"subject": {}}})


def _respond_flow(config: dict[str, Any]) -> dagnats.WorkflowDef:
    return load_definition(
        {
            "name": "r",
            "steps": [
                {"id": "a"},
                {"id": "ans", "type": "respond", "depends_on": ["a"], "config": config},
            ],
        }
    )


def test_respond_answers_with_status_headers_type_and_narrowed_body() -> None:
    h = Sim(
        _respond_flow(
            {
                "status": 202,
                "headers": {"X-A": "1"},
                "body_from": "out.items.1",
                "content_type": "text/plain",
            }
        )
    )
    h.start(None)
    actions = h.complete("a", {"out": {"items": ["x", "y"]}})
    [answer] = [a for a in actions if isinstance(a, Respond)]
    assert (answer.status, answer.headers, answer.content_type, answer.data) == (
        202,
        {"X-A": "1"},
        "text/plain",
        "y",
    )
    assert h.state.steps["ans"].status == "completed"


def test_narrow_misses_are_none() -> None:
    assert narrow({"a": [1]}, "a.5") is None and narrow("text", "a") is None
    assert narrow({"a": {"b": 2}}, "a.b") == 2


def test_bad_respond_config_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError):
        dagnats.Workflow.from_dict(
            {"name": "r", "steps": [{"id": "ans", "type": "respond", "config": {"status": 99}}]}
        )
