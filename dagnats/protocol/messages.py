"""Message bodies on NATS that are not history events: one model per kind, for writer and reader."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class TaskMessage(BaseModel):
    """The body of a message on ``task.<task>[.<group>]``."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    workflow: str
    step_id: str
    task: str
    attempt: int
    iteration: int = 0
    item: int | None = None
    input: Any = None
    timeout_ns: int | None = None
    idempotency_key: str
    dedup_id: str
