"""Exceptions raised by dagnats.

::

    DagnatsError
    ├── DefinitionError          invalid workflow definition (names the step, field and rule)
    ├── InputValidationError     run input rejected by the workflow's input_schema
    ├── NotFoundError
    │   ├── WorkflowNotFoundError
    │   └── RunNotFoundError
    ├── RunError                 a run did not produce a result
    │   ├── RunFailedError       .step_id, .error
    │   └── RunCancelledError
    ├── ApprovalError            approval token unknown, expired or already used
    ├── ApiError                 the API service answered with an error
    ├── ServerError              the embedded nats-server could not be found or started
    └── TaskError                raised by task handlers to steer the engine
        ├── NonRetryableError    fail the step now, no retry
        └── RetryAfter           retry after the given delay

NATS and pydantic errors are translated at the boundary (``raise ... from``), so callers only
need to catch these.
"""

from __future__ import annotations

from dagnats.protocol.durations import DurationLike, to_ns


class DagnatsError(Exception):
    """Base of every error dagnats raises on purpose."""


class DefinitionError(DagnatsError):
    """A workflow definition breaks a rule; the message names the step, field and rule."""

    def __init__(self, message: str, *, step_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.step_id = step_id
        self.field = field


class InputValidationError(DagnatsError):
    """The run input does not satisfy the workflow's ``input_schema``."""


class NotFoundError(DagnatsError):
    pass


class WorkflowNotFoundError(NotFoundError):
    pass


class RunNotFoundError(NotFoundError):
    pass


class RunError(DagnatsError):
    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class RunFailedError(RunError):
    """The run failed (or ended compensated); ``step_id`` and ``error`` say where and why."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        status: str = "failed",
        step_id: str | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message, run_id=run_id, status=status)
        self.step_id = step_id
        self.error = error


class RunCancelledError(RunError):
    pass


class ApprovalError(DagnatsError):
    pass


class ApiError(DagnatsError):
    def __init__(self, message: str, *, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


class ServerError(DagnatsError):
    pass


class TaskError(DagnatsError):
    """Base for exceptions a task handler raises to tell the engine what to do."""


class NonRetryableError(TaskError):
    """Fail the step without retrying (retrying the same input cannot help)."""


class RetryAfter(TaskError):
    """Retry the step after ``delay`` (``"30s"``, a ``timedelta``, or a number of seconds)."""

    def __init__(self, delay: DurationLike, message: str = "") -> None:
        self.delay_ns = to_ns(delay, "RetryAfter delay")
        super().__init__(message or f"retry after {delay}")
