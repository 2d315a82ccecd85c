"""The client: ``Client`` and ``RunHandle`` over the API service."""

from dagnats.client.client import Client
from dagnats.client.handle import RunHandle
from dagnats.client.records import RunSummary, WorkflowInfo

__all__ = ["Client", "RunHandle", "RunSummary", "WorkflowInfo"]
