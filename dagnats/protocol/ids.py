"""Ids minted by the shell: the clock and randomness stay out of the pure machine."""

from __future__ import annotations

import hashlib
import os
import secrets
import time


def new_run_id() -> str:
    """Time-ordered, subject-safe id: 12 hex of milliseconds + 16 random hex."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


FRESH_RUN_ID_S = 300.0  # how far a client-made id's time may be from the service's


def is_fresh_run_id(run_id: str, *, within_s: float = FRESH_RUN_ID_S) -> bool:
    """Whether ``run_id`` is shaped as :func:`new_run_id` makes them and was made within
    ``within_s`` of now: a client that subscribes to a run's end before starting it makes
    its id so, and such an id (64 random bits) needs no check against existing runs."""
    if len(run_id) != 28 or any(c not in "0123456789abcdef" for c in run_id):
        return False
    return abs(int(run_id[:12], 16) / 1000 - time.time()) <= within_s


def worker_id() -> str:
    return f"{os.uname().nodename.replace('.', '-')}-{os.getpid()}-{secrets.token_hex(3)}"


def cron_run_id(trigger_id: str, unix_minute: int) -> str:
    """The run id of a cron trigger's fire: the same in every trigger service (so a minute is
    one run, also past the streams' dedup window) and time-ordered like :func:`new_run_id`."""
    digest = hashlib.sha256(f"{trigger_id}.{unix_minute}".encode()).hexdigest()[:16]
    return f"{unix_minute * 60_000:012x}{digest}"
