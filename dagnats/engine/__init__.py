"""The engine role: a durable consumer on ``history.>`` that advances runs.

May import :mod:`dagnats.protocol`, :mod:`dagnats.dag`, :mod:`dagnats._nats` and
:mod:`dagnats.errors`; never the worker or the client (the roles do not import each other).
Other packages use the names below, not the submodules.
"""

from __future__ import annotations

from dagnats.engine.engine import (
    MAX_APPLY_TRIES,
    MAX_EVENT_DELIVERIES,
    Engine,
)

__all__ = ["MAX_APPLY_TRIES", "MAX_EVENT_DELIVERIES", "Engine"]
