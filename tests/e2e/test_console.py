"""Methodology: the web console in headless Chromium (Selenium) against the real app.

The console is served by the same FastAPI app as ``serve`` (``serve.http_routes()``, so
/console/ and /metrics are there) on a free port, over the test's engine and API on a real
nats-server; the browser runs the shipped page and script, nothing mocked. Checked: the run
list shows a run started meanwhile within 2 s without a reload; the run page of the coding
pipeline draws every step with the state the snapshot holds, streams its output live, shows
the approval and approving it in the page completes the run; a failed run's Retry button
resumes it to completion; every page renders (a screenshot of each is saved under the
artifacts dir printed in the output); with a token the data API wants it and the page asks.
The page weight (bytes fetched) and first paint are measured and printed. Waits poll the DOM
(as WebDriver waits do) with a bound each.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import dagnats
from dagnats.server.http import HttpGateway
from dagnats.server.serve import http_routes
from dagnats.testing import DagnatsEnv
from examples.coding_pipeline.trigger import ISSUE
from examples.coding_pipeline.worker import gpu_worker, worker
from examples.coding_pipeline.workflow import workflow
from tests.e2e.browser import Browser, artifacts_dir, new_driver
from tests.integration.run_helpers import wait_state

TOKEN = "console-test-token-0123456789"


@pytest.fixture
async def gateway(dagnats_env: DagnatsEnv) -> AsyncIterator[HttpGateway]:
    gw = HttpGateway(dagnats_env.nc, port=0, routers=http_routes())
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def browser(gateway: HttpGateway) -> AsyncIterator[Browser]:
    b = Browser(await asyncio.to_thread(new_driver), gateway.url)
    try:
        yield b
    finally:
        await b.close()


async def test_run_list_shows_a_new_run_live(
    dagnats_env: DagnatsEnv, browser: Browser, gateway: HttpGateway
) -> None:
    await browser.open("/")  # redirected to /console/
    await browser.wait("#runs-table")
    assert (await browser.js("return location.pathname")) == "/console/"
    await browser.wait("#live.on", timeout_s=10)  # the SSE stream is open
    marker = await browser.js("window.__marker = 1; return window.__marker")
    wf = dagnats.Workflow("console-live")
    wf.step("nobody_serves_console")
    t0 = time.monotonic()
    run = await dagnats_env.client.start(wf, None)
    await browser.wait(f'tr[data-run-id="{run.run_id}"]', timeout_s=2.0)
    seen_after_s = time.monotonic() - t0
    assert seen_after_s < 2.0
    assert await browser.js("return window.__marker") == marker  # no reload happened
    print(f"\nconsole: a new run appeared in the list {seen_after_s * 1000:.0f} ms after start")
    print(f"console screenshots: {artifacts_dir()}")
    await browser.screenshot("runs")


async def test_coding_pipeline_watched_and_approved_in_the_browser(
    dagnats_env: DagnatsEnv, browser: Browser
) -> None:
    run = await dagnats_env.client.start(workflow, ISSUE)
    await browser.open(f"/console/#/runs/{run.run_id}")
    await browser.wait("#dag")
    # No worker yet: the page says why the run waits (and the page is live before the code
    # step streams, so its output arrives in the page as it is produced).
    await browser.wait(".stuck", where="no worker serves task 'plan'", timeout_s=10)
    await browser.wait("#live.on")
    await browser.screenshot("run-stuck")
    dagnats_env.add_worker(worker)
    dagnats_env.add_worker(gpu_worker)
    # The approval shows up live once plan, code and test have run.
    await browser.wait('.approval[data-step="review"]', timeout_s=30)
    state = await dagnats_env.client.get_run(run.run_id)
    nodes = await browser.all("#dag .node")
    drawn = {await browser.call(n.get_attribute, "data-step"): n for n in nodes}
    assert set(drawn) == {s["id"] for s in workflow.to_dict()["steps"]}
    for step_id, node in drawn.items():
        expected = state.steps[step_id].status if step_id in state.steps else "pending"
        assert await browser.call(node.get_attribute, "data-status") == expected, step_id
    output = await browser.wait("#stream-output", where="[code]")
    assert "[code]" in await browser.call(lambda: output.text)
    await browser.screenshot("run-waiting-for-approval")

    await browser.type("#decision-review", json.dumps({"reviewer": "ada", "comment": "LGTM"}))
    await browser.click("#approve-review")
    await browser.wait('#run-status [data-status="completed"]', timeout_s=30)
    result = await run.result(timeout=10)
    assert result["reviewer"] == "ada"
    await browser.wait('#dag .node[data-step="merge"][data-status="completed"]')
    await browser.screenshot("run-completed")
    rows = await browser.all("#timeline tbody tr")
    assert len(rows) >= 10  # the whole history, live


async def test_retry_button_resumes_a_failed_run(dagnats_env: DagnatsEnv, browser: Browser) -> None:
    broken = {"on": True}
    w = dagnats.Worker()

    @w.task()
    async def fragile_console(ctx: dagnats.TaskContext) -> str:
        if broken["on"]:
            raise dagnats.NonRetryableError("the disk is full")
        return "written"

    dagnats_env.add_worker(w)
    wf = dagnats.Workflow("console-retry")
    wf.step("fragile_console")
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError):
        await run.result(timeout=15)
    await browser.open(f"/console/#/runs/{run.run_id}")
    await browser.wait(".step-error", where="the disk is full")
    await browser.screenshot("run-failed")
    broken["on"] = False
    await browser.click("#retry")
    await browser.wait('#run-status [data-status="completed"]', timeout_s=20)
    assert await run.result(timeout=10) == "written"


async def _render(browser: Browser, fragment: str, css: str, name: str) -> None:
    await browser.go(fragment)
    await browser.wait(css)
    await browser.screenshot(name)


async def test_every_page_renders_and_its_weight(
    dagnats_env: DagnatsEnv, browser: Browser, gateway: HttpGateway
) -> None:
    w = dagnats.Worker()

    @w.task()
    async def doomed_console(ctx: dagnats.TaskContext) -> None:
        raise dagnats.NonRetryableError("no")

    dagnats_env.add_worker(w)
    wf = dagnats.Workflow("console-pages", description="pages of the console")
    wf.step("doomed_console")
    run = await dagnats_env.client.start(wf, None)
    with pytest.raises(dagnats.RunFailedError):
        await run.result(timeout=15)

    await browser.open("/console/")
    await browser.wait("#runs-table")
    figures = await browser.js(
        """
        const nav = performance.getEntriesByType("navigation")[0];
        const res = performance.getEntriesByType("resource");
        const paint = performance.getEntriesByType("paint");
        const fp = paint.find((p) => p.name === "first-contentful-paint") || paint[0];
        const bytes = (e) => e.encodedBodySize || e.transferSize || 0;
        return {
          html: bytes(nav),
          assets: res.filter((r) => r.name.includes("/console/static/")).map(bytes),
          data: res.filter((r) => r.name.includes("/console/api/") &&
                                  !r.name.includes("/live/")).map(bytes),
          first_paint_ms: fp ? fp.startTime : null,
        };
        """
    )
    shipped = figures["html"] + sum(figures["assets"])
    figures["shipped_kib"] = round(shipped / 1024, 1)
    (artifacts_dir() / "page-weight.json").write_text(json.dumps(figures, indent=2))
    print(
        f"\nconsole page weight: {figures['shipped_kib']} KiB shipped (html+css+js, "
        f"uncompressed), {sum(figures['data']) / 1024:.1f} KiB of data on the runs page; "
        f"first contentful paint {figures['first_paint_ms']:.0f} ms"
    )
    assert shipped < 100 * 1024

    await _render(browser, f"#/runs/{run.run_id}", "#dag", "run-page")
    await _render(browser, "#/workflows", "#workflows-table", "workflows")
    await _render(browser, "#/workflows/console-pages", "#definition", "workflow")
    await _render(browser, "#/dead-letters", f'tr[data-seq] a[href="#/runs/{run.run_id}"]', "dlq")
    await _render(browser, "#/workers", "#workers-table tr[data-worker]", "workers")
    await browser.go("#/triggers")
    await browser.wait("#triggers-table, #triggers-error")
    await browser.screenshot("triggers")
    letters = await dagnats_env.client.list_dead_letters(run_id=run.run_id)
    await browser.go("#/dead-letters")
    await browser.click(f"#replay-{letters[0].seq}")
    await wait_state(dagnats_env, run.run_id, lambda s: s.steps["doomed_console"].attempts >= 2)
    print(f"console screenshots: {artifacts_dir()}")


async def test_the_data_api_wants_the_token(dagnats_env: DagnatsEnv) -> None:
    gw = HttpGateway(dagnats_env.nc, port=0, token=TOKEN, routers=http_routes())
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            assert (await http.get("/console/")).status_code == 200  # the page holds no data
            assert (await http.get("/console/api/runs")).status_code == 401
            assert (await http.get("/console/api/live/runs")).status_code == 401
            ok = await http.get("/console/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
            assert (await http.get("/console/static/../../etc/passwd")).status_code == 404
            assert (await http.get("/console/static/nope.js")).status_code == 404
            bad: Any = await http.get(
                "/console/api/runs/nope", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert bad.status_code == 404 and bad.json()["error"]["kind"] == "RunNotFoundError"
        b = Browser(await asyncio.to_thread(new_driver), gw.url)
        try:
            await b.open("/console/")
            await b.wait("#token-form:not([hidden])")
            await b.type("#token-input", TOKEN)
            await b.click("#token-form button")
            await b.wait("#runs-table")
        finally:
            await b.close()
    finally:
        await gw.stop()
