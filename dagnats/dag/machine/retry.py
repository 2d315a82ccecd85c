"""Retry math: which policy applies to a step, how long the n-th retry waits, whether one is left.

Counting (the same as ``RetryPolicy``'s docstring and the seed's tutorial): ``max_attempts``
is the number of *retries after the first failure*, so a step runs at most
``1 + max_attempts`` times. Retry numbers are 1-based: the first retry is retry 1.
"""

from __future__ import annotations

from dagnats.dag.definition.models import MAX_SLEEP_NS, RetryPolicy, StepDef, WorkflowDef
from dagnats.protocol.durations import HOUR, MS, SECOND

DEFAULT_POLICY = RetryPolicy()  # no retries: a failure is final unless a policy says otherwise
# Every computed delay is clamped to this range (Go's rule): never a hot loop, never a
# retry so far off that nobody waits for it.
MIN_RETRY_DELAY_NS = MS
MAX_RETRY_DELAY_NS = HOUR
# Go's legacy ``retries: N``: N retries, 5 s apart.
LEGACY_RETRY_DELAY_NS = 5 * SECOND


def legacy_policy(retries: int) -> RetryPolicy:
    """What Go's ``retries: N`` means: ``{max_attempts: N, fixed, 5 s, max 5 s}``."""
    return RetryPolicy.model_validate(
        {
            "max_attempts": retries,
            "strategy": "fixed",
            "initial_delay": LEGACY_RETRY_DELAY_NS,
            "max_delay": LEGACY_RETRY_DELAY_NS,
        }
    )


def effective_policy(defn: WorkflowDef, step: StepDef) -> RetryPolicy:
    """The step's ``retry``, else the workflow's ``default_retry``, else the step's legacy
    ``retries``, else no retries."""
    if step.retry is not None:
        return step.retry
    if defn.default_retry is not None:
        return defn.default_retry
    if step.retries:
        return legacy_policy(step.retries)
    return DEFAULT_POLICY


def retry_delay_ns(policy: RetryPolicy, retry_number: int) -> int:
    """Delay before retry ``retry_number`` (1-based), in nanoseconds.

    fixed: ``initial``; linear: ``initial * n``; exponential: ``initial * multiplier**(n-1)``;
    then capped by ``max_delay`` when set (absent = no cap), then clamped to [1 ms, 1 h].
    """
    n = max(1, retry_number)
    initial = policy.initial_delay
    cap = MAX_RETRY_DELAY_NS if policy.max_delay is None else policy.max_delay
    cap = min(cap, MAX_RETRY_DELAY_NS)
    if policy.strategy == "fixed":
        delay = initial
    elif policy.strategy == "linear":
        delay = initial * n
    else:
        # Float growth is only used to decide whether we are past the cap; below the cap the
        # value is rounded back to whole nanoseconds.
        try:
            grown = float(initial) * policy.multiplier ** (n - 1)
        except OverflowError:
            grown = float(cap)
        delay = cap if grown >= cap else round(grown)
    return max(MIN_RETRY_DELAY_NS, min(delay, cap))


def retries_left(policy: RetryPolicy, attempts: int) -> bool:
    """True if a step that has run ``attempts`` times (all failed) may run once more."""
    return attempts - 1 < policy.max_attempts


def clamp_retry_after(value: object) -> int | None:
    """A worker's ``RetryAfter`` delay, if usable: a non-negative int, at most a year."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0:
        return None
    return min(int(value), MAX_SLEEP_NS)
