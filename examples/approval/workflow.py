"""build -> approve (a person) -> deploy, which gets both the build and the decision."""

from __future__ import annotations

import dagnats
from examples.approval.worker import build, deploy

workflow = dagnats.Workflow("approved-deploy", version="1.0")
b = workflow.step(build)
a = workflow.approval(
    "approve",
    depends_on=[b],
    timeout="1h",  # then the step fails with ApprovalExpired (at most 7 days)
    message="Deploy to production?",
)
workflow.step(deploy, depends_on=[b, a])
