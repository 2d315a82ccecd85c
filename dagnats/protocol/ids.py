"""Ids minted by the shell: the clock and randomness stay out of the pure machine."""

from __future__ import annotations

import os
import secrets
import time


def new_run_id() -> str:
    """Time-ordered, subject-safe id: 12 hex of milliseconds + 16 random hex."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def worker_id() -> str:
    return f"{os.uname().nodename.replace('.', '-')}-{os.getpid()}-{secrets.token_hex(3)}"
