"""Ids minted by the shell: the clock and randomness stay out of the pure machine."""

from __future__ import annotations

import hashlib
import os
import secrets
import time


def new_run_id() -> str:
    """Time-ordered, subject-safe id: 12 hex of milliseconds + 16 random hex."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def worker_id() -> str:
    return f"{os.uname().nodename.replace('.', '-')}-{os.getpid()}-{secrets.token_hex(3)}"


def cron_run_id(trigger_id: str, unix_minute: int) -> str:
    """The run id of a cron trigger's fire: the same in every trigger service (so a minute is
    one run, also past the streams' dedup window) and time-ordered like :func:`new_run_id`."""
    digest = hashlib.sha256(f"{trigger_id}.{unix_minute}".encode()).hexdigest()[:16]
    return f"{unix_minute * 60_000:012x}{digest}"
