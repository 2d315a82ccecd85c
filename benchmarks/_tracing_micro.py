"""The CPU dagnats's tracing adds to one step, without NATS (benchmark helper).

Per step a run goes through: the engine applies the event (a consumer span continued from
the message's headers), dispatches the task (a producer span and ``msg_id`` headers), the
worker runs it (a consumer span continued from the task's headers) and publishes the result
(``msg_id``). This does exactly those calls ``--steps`` times and prints µs per step as
JSON, in the mode ``benchmarks._traced`` set from ``DAGNATS_BENCH_TRACING``.
"""

from __future__ import annotations

import json
import sys
import time

import benchmarks._traced as traced  # first: sets the tracing mode
from dagnats._nats.publish import msg_id
from dagnats.telemetry import tracing


def one_step(headers: dict[str, str], i: int) -> dict[str, str]:
    attrs = {tracing.RUN_ID: "r", tracing.STEP_ID: "s", tracing.ATTEMPT: 1}
    with tracing.span("dagnats.apply step.completed", attrs, parent=headers, kind="consumer"):
        tracing.annotate({tracing.WORKFLOW: "wf"})
        with tracing.span("dagnats.step s", attrs, kind="producer"):
            task_headers = msg_id(f"r.s.{i}")
    with tracing.span("dagnats.task t", attrs, parent=task_headers, kind="consumer"):
        return msg_id(f"r.s.{i}.result")


def main(steps: int) -> None:
    headers: dict[str, str] = {}
    for i in range(1000):  # warm-up
        headers = one_step(headers, i)
    t0 = time.perf_counter()
    for i in range(steps):
        headers = one_step(headers, i)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"mode": traced.MODE, "us_per_step": elapsed / steps * 1e6}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
