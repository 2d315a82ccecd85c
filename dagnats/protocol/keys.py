"""KV and object-store keys: attempts, payloads, checkpoints, signals, waiters, approvals."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

# Names become NATS subject tokens, KV keys and consumer names: one rule, in limits.
from dagnats.protocol.limits import check_name as check_name
from dagnats.protocol.names import name_from_token, name_token


def attempt_key(run_id: str, step_id: str, attempt: int, iteration: int, item: int | None) -> str:
    """``<run>.<step>.<attempt>.<iteration>`` or, for a map instance, ``...<attempt>.i<n>``
    (every step id in a key or subject is its :func:`~dagnats.protocol.names.name_token`)."""
    step = name_token(step_id)
    if item is not None:
        return f"{run_id}.{step}.{attempt}.i{item}"
    return f"{run_id}.{step}.{attempt}.{iteration}"


def idempotency_key(run_id: str, step_id: str, item: int | None, handling: str | None) -> str:
    """The task's idempotency key: one per step (per map instance, per handler use)."""
    key = f"{run_id}.{name_token(step_id)}"
    if item is not None:
        return f"{key}.{item}"
    if handling is not None:
        return f"{key}.{handling}"
    return key


def payload_key(
    run_id: str, step_id: str, attempt: int, iteration: int, item: int | None, field: str
) -> str:
    """Object key of a task's offloaded ``input``, ``output`` or ``value``:
    ``<run>/<step>/<attempt>.<iteration>[.i<item>]/<field>``."""
    suffix = "" if item is None else f".i{item}"
    return f"{run_id}/{name_token(step_id)}/{attempt}.{iteration}{suffix}/{field}"


def record_payload_key(run_id: str, record_dedup_id: str) -> str:
    """Object key of an engine record's offloaded data."""
    return f"{run_id}/records/{record_dedup_id}"


def checkpoint_key(run_id: str, step_id: str, item: int | None = None) -> str:
    """Attempts of a step share a key; each map instance has its own."""
    step = name_token(step_id)
    return f"{run_id}.{step}" if item is None else f"{run_id}.{step}.{item}"


def log_key(run_id: str, step_id: str, item: int | None = None) -> str:
    """A step's log in the ``run_logs`` bucket; each map instance has its own."""
    return checkpoint_key(run_id, step_id, item)


def run_keys_pattern(run_id: str) -> str:
    """Every key of one run in a bucket keyed ``<run_id>.<...>`` (a KV watch pattern)."""
    return f"{run_id}.>"


def kv_subject(bucket: str, key: str) -> str:
    """The stream subject under which a KV bucket stores ``key`` (a pattern is allowed)."""
    return f"$KV.{bucket}.{key}"


def signal_key(run_id: str, name: str) -> str:
    """``<run_id>.<name>`` in the signals bucket; the name is checked (a subject token)."""
    return f"{run_id}.{check_name(name, 'signal name')}"


def waiter_key(event: str, run_id: str, step_id: str) -> str:
    """``<hex event name>.<run>.<step>`` in the event_waiters bucket."""
    # Event names may contain dots (KV key separators): hex keeps one token per name.
    return f"{event.encode().hex()}.{run_id}.{name_token(step_id)}"


def waiters_of(event: str) -> str:
    """The KV filter matching every waiter of ``event``."""
    return f"{event.encode().hex()}.>"


def approval_ref_key(run_id: str, step_id: str, expires_at: datetime) -> str:
    """``step.<run>.<step>.<deadline ms>``: names the single token of one approval request."""
    return f"step.{run_id}.{name_token(step_id)}.{int(expires_at.timestamp() * 1000)}"


def start_idempotency_key(workflow: str, key: object) -> str:
    """``idempotency_keys``: a start's key, hashed (any text, bounded and KV-safe)."""
    digest = hashlib.sha256(str(key).encode()).hexdigest()[:40]
    return f"{name_token(workflow)}.{digest}"


def deleted_run_key(run_id: str) -> str:
    """``idempotency_keys``: a deleted run's id, held so it cannot be reused too soon."""
    return f"deleted.{run_id}"


def snapshot_key(run_id: str) -> str:
    """Object-store name of a run snapshot too large for one KV value."""
    return f"snapshots/{run_id}"


def hashed_token(value: object, length: int = 32) -> str:
    """A KV-safe, bounded token for any text (a debounce key value, an idempotency header)."""
    return hashlib.sha256(str(value).encode()).hexdigest()[:length]


def debounce_key(trigger_id: str, key_hash: str) -> str:
    """``trigger_debounce``: the held start of one trigger and debounce key value."""
    return f"{trigger_id}.{key_hash}"


def http_answer_key(trigger_id: str, header_value: str) -> str:
    """``http_answers``: an HTTP trigger's answer under its idempotency header value."""
    return f"{trigger_id}.{hashed_token(header_value)}"


def keyed_rate_key(task: str, value_token: str) -> str:
    """``rate_limits`` key of a ``keyed_rate_limit`` bucket: one per task and key value."""
    return f"keyed.{task}.{value_token}"


def singleton_key(workflow: str, scope: str) -> str:
    """``concurrency`` key holding the id of a singleton workflow's active run (per scope)."""
    return f"singleton.{name_token(workflow)}.{scope}"


def control_key(root_run_id: str) -> str:
    """``concurrency`` key counting the child runs the control plane started for a root run."""
    return f"control.{root_run_id}"


def definition_key(workflow: str) -> str:
    """``workflow_defs``: the key of a workflow's definition (one revision per version)."""
    return name_token(workflow)


def workflow_of_definition_key(key: str) -> str:
    """The workflow name stored under a ``workflow_defs`` key."""
    return name_from_token(key)


def run_queue_key(workflow: str) -> str:
    """``concurrency``: the admitted runs and pending backlog of a ``max_runs`` workflow."""
    return f"run.{name_token(workflow)}"


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def child_run_id(run_id: str, step_id: str, attempt: int) -> str:
    """``<run>-<step>-<attempt>``: the run a ``sub_workflow`` step starts (one per attempt).

    A run id is one subject token of ``[A-Za-z0-9_-]`` (no ``=``, unlike name tokens), so
    other characters become ``_``; a dotted step id also gets a short hash of itself, so
    steps ``pay.card`` and ``pay_card`` of one run never start the same child. Undotted ids
    keep the shape they always had (a run in flight across an upgrade finds its child).
    """
    base = _UNSAFE.sub("_", f"{run_id}-{step_id}")
    if "." in step_id:
        base += "-" + hashlib.sha256(step_id.encode()).hexdigest()[:8]
    return f"{base}-{attempt}"
