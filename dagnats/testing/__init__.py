"""Testing helpers shipped with dagnats: ``DagnatsEnv``, the pytest plugin, fake contexts,
and ``wait_event`` / ``wait_state``.

The names are loaded on first use: the pytest plugin (``dagnats.testing.plugin``) lives in
this package, and a test session that uses no dagnats fixture must not pay for importing the
engine and the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagnats.testing.env import DagnatsEnv
    from dagnats.testing.fake import fake_context
    from dagnats.testing.waits import wait_event, wait_state

__all__ = ["DagnatsEnv", "fake_context", "wait_event", "wait_state"]

_HOMES = {
    "DagnatsEnv": "dagnats.testing.env",
    "fake_context": "dagnats.testing.fake",
    "wait_event": "dagnats.testing.waits",
    "wait_state": "dagnats.testing.waits",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dagnats.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value
