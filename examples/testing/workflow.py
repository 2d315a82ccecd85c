"""The renewal workflow: a 7-day trial, a charge retried an hour later, a manager's sign-off.

Run from the repository root (``python -m examples.testing.workflow`` prints its JSON): the
``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import dagnats
from examples.testing.worker import charge, notify

workflow = dagnats.Workflow("subscription-renewal", version="1.0")
trial = workflow.sleep("trial", duration="168h")  # a week
paid = workflow.step(
    charge,
    depends_on=[trial],
    retry=dagnats.RetryPolicy(max_attempts=3, strategy="fixed", initial_delay="1h"),
)
signed = workflow.approval("sign-off", depends_on=[paid], timeout="24h")
workflow.step(notify, depends_on=[signed])

if __name__ == "__main__":
    print(workflow.to_json())
