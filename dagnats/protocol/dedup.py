"""Dedup ids (``Nats-Msg-Id``) of everything dagnats publishes: one function per format.

The streams drop a message whose id they saw within the dedup window, so a publish repeated
after a crash leaves no trace. These strings must never change shape: an engine or worker
of another version, or a recovery replaying old actions, relies on the same bytes.
Input events get their ids from the constructors in :mod:`dagnats.protocol.events`, which
call these; actions and records of the machine call them directly.
"""

from __future__ import annotations

from dagnats.protocol.keys import attempt_key
from dagnats.protocol.names import name_token


def record_id(
    run_id: str,
    type_: str,
    step_id: str | None = None,
    attempt: int | None = None,
    iteration: int | None = None,
    item: int | None = None,
    *,
    retry: int = 0,
) -> str:
    """An engine record: ``<run>.<type>``, or ``<attempt key>.<type>`` for a step's record.

    Records made after the run's ``retry``-th retry get ``.retry<n>`` appended, so a run
    that fails again soon after a retry still records it (the first shape is unchanged).
    """
    suffix = f".retry{retry}" if retry else ""
    if step_id is None:
        return f"{run_id}.{type_}{suffix}"
    return f"{attempt_key(run_id, step_id, attempt or 0, iteration or 0, item)}.{type_}{suffix}"


def timer_id(
    run_id: str,
    kind: str,
    step_id: str | None = None,
    attempt: int = 0,
    iteration: int = 0,
    item: int | None = None,
    *,
    retry: int = 0,
) -> str:
    """A scheduled timer: ``<run>.<kind>`` for a run's timer, else ``<attempt key>.<kind>``
    (a run's timer armed after its ``retry``-th retry: ``<run>.<kind>.retry<n>``)."""
    if step_id is None:
        return f"{run_id}.{kind}" + (f".retry{retry}" if retry else "")
    return f"{attempt_key(run_id, step_id, attempt, iteration, item)}.{kind}"


def task_id(
    run_id: str, step_id: str, attempt: int, iteration: int, item: int | None = None
) -> str:
    """A task message: its attempt key (results and losses derive their ids from it)."""
    return attempt_key(run_id, step_id, attempt, iteration, item)


def sticky_task_id(task_dedup_id: str, worker_id: str) -> str:
    """A sticky run's task sent to (or forwarded to) the worker its run is bound to."""
    return f"{task_dedup_id}.@{worker_id}"


def deferred_task_id(task_dedup_id: str) -> str:
    """A task parked on the timer stream by its rate or concurrency limit."""
    return f"defer.{task_dedup_id}"


def dead_letter_id(run_id: str, step_id: str, item: int | None, attempts: int) -> str:
    """A task's dead letter (``item`` is spelled ``None`` for a plain step: kept as it was)."""
    return f"dead.{run_id}.{name_token(step_id)}.{item}.{attempts}"


def engine_dead_letter_id(seq: int) -> str:
    """A history event the engine gave up on, by its stream sequence."""
    return f"dead.engine.{seq}"


def trigger_fire_id(trigger_id: str, unix_minute: int) -> str:
    """A cron trigger's start for one minute: ``trigger.<id>.<unix minute>``. Every trigger
    service computes the same id, so a minute fires once however many run, and a restart
    inside the minute repeats nothing."""
    return f"trigger.{trigger_id}.{unix_minute}"


def trigger_start_id(trigger_id: str, token: str) -> str:
    """Any other trigger start (subject, webhook, HTTP, debounce, manual): unique ``token``."""
    return f"trigger.{trigger_id}.x{token}"


def scheduled_start_id(run_id: str) -> str:
    """A scheduled run's start, published when its timer is due: ``<run>.started.scheduled``."""
    return f"{run_id}.started.scheduled"


def scheduled_timer_id(run_id: str) -> str:
    """The timer of a scheduled run (one per run)."""
    return f"{run_id}.scheduled"


def debounce_timer_id(trigger_id: str, key_hash: str, generation: int) -> str:
    """One debounce timer: per trigger, key and generation of the held start."""
    return f"debounce.{trigger_id}.{key_hash}.{generation}"
