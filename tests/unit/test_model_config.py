"""Models read from NATS share one configuration (protocol.model_config.WIRE_CONFIG)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from pydantic import BaseModel

from dagnats.dag.machine.state import RunState, StepState
from dagnats.protocol.event_types import Event
from dagnats.protocol.messages import TaskMessage, TimerMessage
from dagnats.protocol.model_config import WIRE_CONFIG

HOT_MODELS: list[type[BaseModel]] = [Event, TaskMessage, TimerMessage, RunState, StepState]


@pytest.mark.parametrize("model", HOT_MODELS, ids=lambda m: m.__name__)
def test_every_hot_wire_model_ignores_extras_and_caches_only_keys(model: type[BaseModel]) -> None:
    for key, value in WIRE_CONFIG.items():
        assert model.model_config.get(key) == value, (model.__name__, key)


def test_parsed_values_do_not_outlive_their_events() -> None:
    """pydantic-core's default string cache kept up to 16,384 parsed strings alive (~1 MiB
    for 20,000 small events): with values uncached, parsing keeps nothing."""
    raws = [
        Event(type="step.completed", run_id=f"{i:028x}", data={"output": f"out-{i:08d}"}).to_bytes()
        for i in range(5_000)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        for raw in raws:
            Event.from_bytes(raw)
        gc.collect()
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < 64 * 1024, f"{kept} bytes kept after parsing"
