"""Exceptions raised by dagnats: one tree, every class importable from ``dagnats``.

::

    Exception
    ├── DagnatsError                  base of every error dagnats raises on purpose
    │   ├── DefinitionError           (also ValueError) invalid workflow definition; names the
    │   │                             step, field and rule (.step_id, .field)
    │   ├── InputValidationError      (also ValueError) run input rejected by the workflow's
    │   │                             input_schema
    │   ├── NotFoundError             (also LookupError)
    │   │   ├── WorkflowNotFoundError
    │   │   └── RunNotFoundError
    │   ├── RunError                  a run did not produce a result (.run_id, .status)
    │   │   ├── RunFailedError        .step_id, .error
    │   │   └── RunCancelledError
    │   ├── ApprovalError             approval token unknown, expired or already used
    │   ├── ApiError                  the API service answered with an error (.code, HTTP-like)
    │   ├── CapabilityError           (also PermissionError) a handler used what its step did
    │   │                             not declare (``ctx.control`` without "control-plane"),
    │   │                             or went past the control plane's budget
    │   ├── NatsUnavailableError      NATS cannot be reached: connecting failed, or JetStream
    │   │                             did not answer
    │   ├── ServerError               the embedded nats-server could not be found or started
    │   ├── StoreError                a WorkflowStore operation failed
    │   │                             ("store/load: get: <error>")
    │   └── TaskError                 raised by task handlers to steer the engine
    │       ├── NonRetryableError     fail the step now, no retry
    │       └── RetryAfter            retry after the given delay
    └── ValueError
        └── DurationError             a duration dagnats cannot read ("5d", -1, True); lives in
                                      dagnats.protocol.durations (which imports nothing of
                                      dagnats); inside a definition it becomes DefinitionError

Builtins are raised as themselves where Python's meaning is exact: ``TypeError`` for an
argument of the wrong type (``@worker.task()(42)``), ``ValueError`` for a bad option value
(``Worker(concurrency=0)``), ``RuntimeError`` for a call in the wrong state (a second
``worker.run()``), ``TimeoutError`` when a wait runs out (``run.result(timeout=...)``,
``ctx.wait_for_signal``), ``KeyError`` from the mapping-like ``WorkflowDef.step(id)``.

NATS and pydantic errors are translated at the boundary (``raise ... from``), so callers only
need to catch these. Other exception classes in the package (``ConditionError``,
``InputError``, ``ConflictError``, ``OutputError``, ``CliError`` and the underscored ones)
are internal: each is caught where it is raised and becomes one of the above, a step
failure, or a CLI exit code.

The API carries an error's class name (``{"error": {"kind": "RunNotFoundError"}}``) and the
client raises the same class again, so these names are part of the wire format.
"""

from __future__ import annotations

from dagnats.protocol.durations import DurationLike, to_ns


class DagnatsError(Exception):
    """Base of every error dagnats raises on purpose."""


class DefinitionError(DagnatsError, ValueError):
    """A workflow definition breaks a rule; the message names the step, field and rule."""

    def __init__(self, message: str, *, step_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.step_id = step_id
        self.field = field


class InputValidationError(DagnatsError, ValueError):
    """The run input does not satisfy the workflow's ``input_schema``."""


class NotFoundError(DagnatsError, LookupError):
    """Something asked for by name or id does not exist."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow (or no such revision of it) is registered under that name."""


class RunNotFoundError(NotFoundError):
    """No run has that id."""


class RunError(DagnatsError):
    """A run did not produce a result; ``status`` is how it ended."""

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
    """The run was cancelled before it produced a result."""


class ApprovalError(DagnatsError):
    """An approval token is unknown, expired or already used."""


class ApiError(DagnatsError):
    """The API service answered with an error; ``code`` is its HTTP-like status."""

    def __init__(self, message: str, *, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


class CapabilityError(DagnatsError, PermissionError):
    """A handler used a capability its step does not declare in ``required_capabilities``
    (``ctx.control`` needs ``"control-plane"``), or exceeded the control plane's bounds."""


class StoreError(DagnatsError):
    """A ``WorkflowStore`` operation failed: ``store/<operation>: <step>: <error>``."""


class NatsUnavailableError(DagnatsError):
    """NATS cannot be reached: the connection failed, or JetStream did not answer."""


class ServerError(DagnatsError):
    """The embedded nats-server could not be found or started."""


class TaskError(DagnatsError):
    """Base for exceptions a task handler raises to tell the engine what to do."""


class NonRetryableError(TaskError):
    """Fail the step without retrying (retrying the same input cannot help)."""


class RetryAfter(TaskError):
    """Retry the step after ``delay`` (``"30s"``, a ``timedelta``, or a number of seconds)."""

    def __init__(self, delay: DurationLike, message: str = "") -> None:
        self.delay_ns = to_ns(delay, "RetryAfter delay")
        super().__init__(message or f"retry after {delay}")
