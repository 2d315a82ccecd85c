"""One role of dagnats in a process with the OpenTelemetry SDK and an in-memory exporter.

``python tests/integration/traced_process.py ROLE NATS_URL OUT`` with ROLE ``engine``
(engine + API service until SIGTERM), ``worker`` (a worker until SIGTERM) or ``client``
(register, start one run, wait for its result). Each prints ``ready`` once it serves, and
writes the spans it finished to OUT (one JSON object a line) before it exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dagnats
from dagnats.server import ServeOptions
from dagnats.server.serve import Serve

WORKFLOW = "traced-flow"


def workflow() -> dagnats.Workflow:
    wf = dagnats.Workflow(WORKFLOW)
    g = wf.step("greet")
    wf.step("shout", depends_on=[g])
    return wf


def span_doc(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    assert ctx is not None
    return {
        "name": s.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None,
        "kind": s.kind.name,
        "attributes": dict(s.attributes or {}),
    }


async def until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()


async def engine(url: str) -> None:
    serve = Serve(ServeOptions(nats_url=url, http=False))
    await serve.start()
    try:
        await until_terminated()
    finally:
        await serve.stop()


async def worker(url: str) -> None:
    w = dagnats.Worker(nats_url=url)
    tracer = trace.get_tracer("traced-worker")

    @w.task()
    async def greet(ctx: dagnats.TaskContext, name: str) -> str:
        with tracer.start_as_current_span("handler.greet"):  # the handler's own span
            return f"hello {name}"

    @w.task()
    async def shout(ctx: dagnats.TaskContext, text: str) -> str:
        return text.upper()

    async with w:
        await w.ready.wait()
        await until_terminated()


async def client(url: str) -> None:
    async with await dagnats.Client.connect(url) as c:
        await c.register(workflow())
        run = await c.start(WORKFLOW, "ada")
        print(json.dumps({"run_id": run.run_id, "result": await run.result(timeout=30)}))


def main() -> None:
    role, url, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        asyncio.run({"engine": engine, "worker": worker, "client": client}[role](url))
    finally:
        with out.open("w") as f:
            for s in exporter.get_finished_spans():
                f.write(json.dumps(span_doc(s)) + "\n")


if __name__ == "__main__":
    main()
