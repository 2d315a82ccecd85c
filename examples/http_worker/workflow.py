"""A workflow with one step in Python and one served over HTTP by any language.

``clean`` runs on a Python ``dagnats.Worker``; ``count_words`` on the HTTP worker in
``http_worker.py`` (plain httpx: a Go or TypeScript worker sends the same requests).

Run it from the repository root (the ``examples`` package is not installed with dagnats):
``dagnats worker examples.http_worker.workflow:worker``.
"""

from __future__ import annotations

import dagnats

worker = dagnats.Worker(name="python-side")


@worker.task()
async def clean(ctx: dagnats.TaskContext, text: str) -> str:
    return " ".join(text.lower().split())


workflow = dagnats.Workflow("http-words", version="1.0")
workflow.step("count_words", depends_on=[workflow.step(clean)], timeout="30s")
