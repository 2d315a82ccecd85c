"""The client: ``Client`` and ``RunHandle`` over the API service."""

from dagnats.client.client import Client, RunSummary, WorkflowInfo
from dagnats.client.handle import RunHandle

__all__ = ["Client", "RunHandle", "RunSummary", "WorkflowInfo"]
