"""plan -> code (agent loop on the gpu group) -> test -> review (a person) -> merge."""

from __future__ import annotations

import dagnats
from examples.coding_pipeline.worker import merge, plan, run_test_suite, write_code

workflow = dagnats.Workflow("coding-pipeline", version="1.0", timeout="48h")
planned = workflow.step("plan", task=plan)
coded = workflow.agent_loop(
    "code",
    task=write_code,
    depends_on=[planned],
    max_iterations=6,  # give up (the run fails) rather than loop forever
    loop_delay="100ms",
    worker_group="gpu",  # only Worker(groups=["gpu"]) processes get these tasks
    timeout="2m",
    retry=dagnats.RetryPolicy(max_attempts=2, initial_delay="1s"),  # per round
)
tested = workflow.step("test", task=run_test_suite, depends_on=[coded])
reviewed = workflow.approval(
    "review", depends_on=[tested], timeout="24h", message="Merge this patch?"
)
workflow.step("merge", task=merge, depends_on=[tested, reviewed])
