"""The names of every NATS stream, bucket, consumer and subject dagnats uses (pure)."""

from __future__ import annotations

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"  # a NATS subject token and a KV key: workflows, tasks, ids
MAX_NAME_LEN = 128
# Workflow names and step ids may also be dotted, as in Go's files ("order.v2"): name tokens
# joined by single dots. They reach subjects and keys only through name_token().
DOTTED_NAME_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
TOKEN_DOT = "="


def name_token(name: str) -> str:
    """The one spelling of a workflow name or step id inside a NATS subject, KV key or
    message id: each ``.`` becomes ``=`` (see ADR 0009).

    A dot would split the name into several subject tokens (``order.v2`` would be two, and
    ``ckpt.<run>.a.1`` could be step ``a.1`` or item 1 of step ``a``). ``=`` is a legal
    subject and KV key character that no name may contain, so the mapping is reversible
    (:func:`name_from_token`), never makes two names one token, and leaves every undotted
    name, hence every key written before dots were allowed, exactly as it was.
    """
    return name.replace(".", TOKEN_DOT)


def name_from_token(token: str) -> str:
    """The name :func:`name_token` spelled as ``token`` (what users see)."""
    return token.replace(TOKEN_DOT, ".")


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
KV_TRIGGERS = "triggers"  # TriggerDef records, key = trigger id
KV_TRIGGER_STATE = "trigger_state"  # per trigger: last cron minute fired, recent fires
KV_SCHEDULED = "scheduled_runs"  # runs waiting for their run_at, key = run id
KV_DEBOUNCE = "trigger_debounce"  # held starts of debounced triggers
KV_HTTP_ANSWERS = "http_answers"  # HTTP trigger answers kept for their idempotency header
KV_LOGS = "run_logs"  # what handlers log through ctx.logger, per step (bounded)
OBJ_PAYLOADS = "payloads"

# Consumers
# The engine consumers, one per history partition: partitions.engine_consumer(p).
TIMER_CONSUMER = "dagnats-timers"
DEBOUNCE_CONSUMER = "dagnats-debounce"  # the trigger services' debounce timers (on TIMERS)

API_SUBJECT_PREFIX = "dagnats.api"
SERVICE_NAME = "dagnats"


def history_subject(run_id: str) -> str:
    return f"history.{run_id}"


def task_subject(task: str, group: str | None = None) -> str:
    return f"task.{task}.{group}" if group else f"task.{task}"


def sticky_group(worker_id: str) -> str:
    """The group token of one worker's own task subjects (``task.<task>.@<worker id>``).

    ``@`` is outside NAME_PATTERN, so no worker group can ever be spelled like it and the
    per-worker consumers never overlap the shared ones.
    """
    return f"@{worker_id}"


def is_sticky_subject(subject: str) -> bool:
    """Whether a task subject is one worker's own (a sticky run's step bound to it)."""
    return subject.rsplit(".", 1)[-1].startswith("@")


def task_consumer_name(task: str, group: str | None = None) -> str:
    return f"task-{task}-{group}" if group else f"task-{task}"


def timer_subject(kind: str, run_id: str) -> str:
    return f"timer.{kind}.{run_id}"


def event_subject(name: str) -> str:
    return f"event.{name}"


def dead_letter_subject(run_id: str, step_id: str) -> str:
    return f"dead.{run_id}.{name_token(step_id)}"


def stream_subject(run_id: str, step_id: str) -> str:
    return f"stream.{run_id}.{name_token(step_id)}"


def stream_step_of(subject: str, run_id: str) -> str:
    """The step id of a chunk published on ``stream_subject(run_id, step_id)``."""
    return name_from_token(subject.removeprefix(stream_subject(run_id, "")))


def cancel_subject(run_id: str) -> str:
    """Core subject announcing that a run ended without completing (workers stop its tasks)."""
    return f"dagnats.cancel.{run_id}"


def done_subject(run_id: str) -> str:
    """Core subject on which the engine announces a run's end (``protocol.ended``)."""
    return f"dagnats.done.{run_id}"


def forget_subject(run_id: str) -> str:
    """Core subject telling engines a run was deleted (drop it from their caches)."""
    return f"dagnats.forget.{run_id}"


def respond_subject(run_id: str) -> str:
    """Core subject on which a run's ``respond`` step answers the HTTP request that started it."""
    return f"respond.{run_id}"


def debounce_timer_subject(trigger_id: str) -> str:
    """Debounce timers of a trigger, on the ``TIMERS`` stream (outside ``timer.>``: the
    engine's timer consumer must not see them, and work queues refuse overlapping filters)."""
    return f"debounce.{trigger_id}"


DEBOUNCE_TIMER_FILTER = "debounce.>"
