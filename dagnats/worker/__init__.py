"""The worker SDK: ``Worker``, ``@worker.task()``, ``TaskContext`` and ``Continue``."""

from dagnats.worker.context import TaskContext
from dagnats.worker.outcomes import Continue
from dagnats.worker.pool import WorkerStats
from dagnats.worker.task import Task
from dagnats.worker.worker import Worker

__all__ = ["Continue", "Task", "TaskContext", "Worker", "WorkerStats"]
