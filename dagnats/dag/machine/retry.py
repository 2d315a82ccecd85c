"""Retry math: which policy applies to a step, how long the n-th retry waits, whether one is left.

Counting (the same as ``RetryPolicy``'s docstring and the seed's tutorial): ``max_attempts``
is the number of *retries after the first failure*, so a step runs at most
``1 + max_attempts`` times. Retry numbers are 1-based: the first retry is retry 1.
"""

from __future__ import annotations

from dagnats.dag.definition.models import MAX_SLEEP_NS, RetryPolicy, StepDef, WorkflowDef

DEFAULT_POLICY = RetryPolicy()  # no retries: a failure is final unless a policy says otherwise


def effective_policy(defn: WorkflowDef, step: StepDef) -> RetryPolicy:
    """The step's own policy, else the workflow's ``default_retry``, else no retries."""
    return step.retry or defn.default_retry or DEFAULT_POLICY


def retry_delay_ns(policy: RetryPolicy, retry_number: int) -> int:
    """Delay before retry ``retry_number`` (1-based), in nanoseconds.

    fixed: ``initial``; linear: ``initial * n``; exponential: ``initial * multiplier**(n-1)``;
    each capped by ``max_delay`` when set, and always by a year (the timer's own bound), so a
    large exponent can never overflow or schedule a timer nobody will live to see.
    """
    n = max(1, retry_number)
    initial = policy.initial_delay
    cap = MAX_SLEEP_NS if policy.max_delay is None else min(policy.max_delay, MAX_SLEEP_NS)
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
    return min(delay, cap)


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
