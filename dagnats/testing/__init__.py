"""Testing helpers shipped with dagnats: ``DagnatsEnv``, the pytest plugin, fake contexts."""

from dagnats.testing.env import DagnatsEnv
from dagnats.testing.fake import fake_context

__all__ = ["DagnatsEnv", "fake_context"]
