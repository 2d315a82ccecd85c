"""The names of every NATS stream, bucket, consumer and subject dagnats uses (pure)."""

from __future__ import annotations

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"  # a NATS subject token and a KV key: workflows, tasks, ids
MAX_NAME_LEN = 128

# Streams
HISTORY_STREAM = "WORKFLOW_HISTORY"
TASK_STREAM = "TASK_QUEUES"
TIMER_STREAM = "TIMERS"
EVENT_STREAM = "EVENTS"
DLQ_STREAM = "DEAD_LETTERS"
ADVISORY_STREAM = "ADVISORIES"  # captured max-deliveries advisories of task consumers

# KV buckets and object store
KV_DEFS = "workflow_defs"
KV_RUNS = "workflow_runs"
KV_CHECKPOINTS = "checkpoints"
KV_SIGNALS = "signals"
KV_WAITERS = "event_waiters"
KV_WORKERS = "workers"
KV_IDEMPOTENCY = "idempotency_keys"
KV_RATE_LIMITS = "rate_limits"
KV_CONCURRENCY = "concurrency"
KV_APPROVALS = "approval_tokens"
KV_STICKY = "sticky_bindings"
KV_LOGS = "run_logs"  # what handlers log through ctx.logger, per step (bounded)
OBJ_PAYLOADS = "payloads"

# Consumers
ENGINE_CONSUMER = "dagnats-engine"
TIMER_CONSUMER = "dagnats-timers"

API_SUBJECT_PREFIX = "dagnats.api"
SERVICE_NAME = "dagnats"


def history_subject(run_id: str) -> str:
    return f"history.{run_id}"


def task_subject(task: str, group: str | None = None) -> str:
    return f"task.{task}.{group}" if group else f"task.{task}"


def task_consumer_name(task: str, group: str | None = None) -> str:
    return f"task-{task}-{group}" if group else f"task-{task}"


def timer_subject(kind: str, run_id: str) -> str:
    return f"timer.{kind}.{run_id}"


def event_subject(name: str) -> str:
    return f"event.{name}"


def dead_letter_subject(run_id: str, step_id: str) -> str:
    return f"dead.{run_id}.{step_id}"


def stream_subject(run_id: str, step_id: str) -> str:
    return f"stream.{run_id}.{step_id}"


def cancel_subject(run_id: str) -> str:
    """Core subject announcing that a run ended without completing (workers stop its tasks)."""
    return f"dagnats.cancel.{run_id}"


def done_subject(run_id: str) -> str:
    """Core subject on which the engine announces a run's terminal snapshot, once stored."""
    return f"dagnats.done.{run_id}"


def forget_subject(run_id: str) -> str:
    """Core subject telling engines a run was deleted (drop it from their caches)."""
    return f"dagnats.forget.{run_id}"
