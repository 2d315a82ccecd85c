"""Methodology: /metrics parsed with ``prometheus_client.parser`` on a real nats-server.

A workflow with a retried step, a dead-lettered step and a sleep runs on the env's engine;
the app's /metrics (with the route ``serve`` adds, behind the bearer token) and a
standalone :class:`MetricsServer` are scraped and parsed; each series named in API.md (and
retries, dead letters, timer lag, events applied) must be there with the values this run
added (the registry is per process, so the test compares before and after).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import dagnats
from dagnats.server.http import HttpGateway
from dagnats.server.metrics import MetricsServer
from dagnats.server.serve import http_routes
from dagnats.testing import DagnatsEnv
from tests.integration.run_helpers import wait_state

TOKEN = "metrics-test-token-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def gateway(dagnats_env: DagnatsEnv) -> AsyncIterator[HttpGateway]:
    gw = HttpGateway(dagnats_env.nc, port=0, token=TOKEN, routers=http_routes())
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def scrape(url: str, token: str | None = TOKEN) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(url, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_what_the_engine_applied(
    dagnats_env: DagnatsEnv, gateway: HttpGateway
) -> None:
    url = f"{gateway.url}/metrics"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url)).status_code == 401  # the same auth as REST
    worker = dagnats.Worker()

    @worker.task()
    async def flaky_m(ctx: dagnats.TaskContext) -> int:
        if ctx.attempt == 1:
            raise RuntimeError("once")
        return ctx.attempt

    @worker.task()
    async def doomed_m(ctx: dagnats.TaskContext, n: int) -> int:
        raise dagnats.NonRetryableError("never")

    wf = dagnats.Workflow("metrics-flow")
    f = wf.step(
        "flaky_m", retry=dagnats.RetryPolicy(max_attempts=3, strategy="fixed", initial_delay=0.05)
    )
    s = wf.sleep("nap", duration=0.05, depends_on=[f])
    wf.step("doomed_m", depends_on=[s])
    before = await scrape(url)
    dagnats_env.add_worker(worker)
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError):
        await run.result(timeout=20)
    after = await scrape(url)

    assert delta(after, before, "dagnats_runs_started_total", workflow="metrics-flow") == 1
    assert (
        delta(
            after, before, "dagnats_runs_finished_total", workflow="metrics-flow", status="failed"
        )
        == 1
    )
    assert delta(after, before, "dagnats_steps_finished_total", task="flaky_m", status="completed")
    assert delta(after, before, "dagnats_steps_finished_total", task="sleep", status="completed")
    assert delta(after, before, "dagnats_steps_finished_total", task="doomed_m", status="failed")
    assert delta(after, before, "dagnats_step_retries_total", task="flaky_m") == 1
    assert delta(after, before, "dagnats_dead_letters_total", task="doomed_m") == 1
    assert delta(after, before, "dagnats_step_duration_seconds_count", task="flaky_m") == 1
    assert delta(after, before, "dagnats_timer_lag_seconds_count", kind="retry") >= 1
    assert delta(after, before, "dagnats_timer_lag_seconds_count", kind="sleep") >= 1
    assert delta(after, before, "dagnats_engine_events_applied_total", type="workflow.started") == 1
    assert delta(after, before, "dagnats_worker_tasks_total", task="flaky_m", outcome="failed") == 1
    assert delta(after, before, "dagnats_worker_handler_seconds_count", task="doomed_m") == 1
    # The worker's consumers exist and their queues are empty now.
    assert after[("dagnats_tasks_pending", (("task", "flaky_m"),))] == 0


async def test_pending_tasks_and_the_standalone_exporter(dagnats_env: DagnatsEnv) -> None:
    wf = dagnats.Workflow("metrics-pending")
    wf.step("nobody_serves_m")
    for _ in range(3):
        run = await dagnats_env.client.start(wf, None)
        # The engine publishes the task before it writes the snapshot that says "queued".
        await wait_state(dagnats_env, run.run_id, lambda s: "nobody_serves_m" in s.steps)
    exporter = MetricsServer(0, js=dagnats_env.nc.jetstream())
    await exporter.start()
    try:
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        samples = await scrape(url, token=None)
        assert samples[("dagnats_tasks_pending", (("task", "nobody_serves_m"),))] == 3
    finally:
        await exporter.stop()
