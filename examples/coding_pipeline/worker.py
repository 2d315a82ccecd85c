"""The coding pipeline's tasks, on two workers.

``worker`` (ordinary machines) serves plan, run_test_suite and merge. ``gpu_worker`` serves
write_code, which the workflow sends to worker group ``gpu``: only workers created with
``groups=["gpu"]`` receive it. Run them with::

    dagnats worker examples.coding_pipeline.worker:worker
    dagnats worker examples.coding_pipeline.worker:gpu_worker

The "LLM" is a deterministic fake so the example (and its test) always behaves the same: it
needs three rounds to write a ``slugify`` that passes the unit tests. Each round streams its
output line by line with ``ctx.put_stream`` and checkpoints the finished draft, so a retry of
the same round re-uses the draft instead of paying for the model again.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="coding-cpu")
gpu_worker = dagnats.Worker(name="coding-gpu", groups=["gpu"], serve_ungrouped=False)


class Issue(BaseModel):
    repo: str
    title: str
    body: str


class Round(BaseModel):
    iteration: int
    failures: list[str]


class CodeState(BaseModel):
    """The agent loop's state: the plan's output at first, then each Continue value."""

    issue: Issue
    plan: list[str]
    rounds: list[Round] = []


class Draft(BaseModel):
    """What write_code checkpoints once a round's draft is complete."""

    iteration: int
    source: str


class Patch(BaseModel):
    issue: Issue
    source: str
    iterations: int


class SuiteReport(BaseModel):
    patch: Patch
    passed: int
    failed: int


class Review(BaseModel):
    """The data the reviewer passes to ``client.approve``."""

    reviewer: str
    comment: str


class MergeIn(BaseModel):
    test: SuiteReport
    review: Review


class MergeResult(BaseModel):
    repo: str
    branch: str
    commit: str
    reviewer: str
    iterations: int


# --- the fake LLM --------------------------------------------------------------------------

DRAFTS = (
    'def slugify(text):\n    return text.replace(" ", "-")\n',
    'def slugify(text):\n    return text.lower().replace(" ", "-")\n',
    "import re\n\n\ndef slugify(text):\n"
    '    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))\n',
)

UNIT_TESTS = (
    ("hello world", "hello-world"),
    ("Hello World", "hello-world"),
    ("Hello, World!", "hello-world"),
)


class FakeLLM:
    """Writes the next draft, one line at a time, as a streaming model would."""

    calls = 0

    @classmethod
    async def complete(cls, state: CodeState) -> AsyncIterator[str]:
        cls.calls += 1
        draft = DRAFTS[min(len(state.rounds), len(DRAFTS) - 1)]
        for line in draft.splitlines(keepends=True):
            await asyncio.sleep(0)  # a real model yields tokens over time
            yield line


def run_unit_tests(source: str) -> list[str]:
    """The failures of the draft against UNIT_TESTS (empty when it passes)."""
    namespace: dict[str, object] = {}
    exec(compile(source, "<draft>", "exec"), namespace)  # a sandbox in real life
    slugify = namespace["slugify"]
    assert callable(slugify)
    failures: list[str] = []
    for given, expected in UNIT_TESTS:
        got = slugify(given)
        if got != expected:
            failures.append(f"slugify({given!r}) == {got!r}, expected {expected!r}")
    return failures


# --- tasks ---------------------------------------------------------------------------------


@worker.task()
async def plan(ctx: dagnats.TaskContext, issue: Issue) -> CodeState:
    steps = [f"read {issue.repo}", f"implement: {issue.title}", "make the unit tests pass"]
    return CodeState(issue=issue, plan=steps)


@gpu_worker.task(timeout="2m")
async def write_code(
    ctx: dagnats.TaskContext, state: CodeState
) -> Patch | dagnats.Continue[CodeState]:
    saved = await ctx.load_checkpoint(Draft)
    if saved is not None and saved.iteration == ctx.iteration:
        source = saved.source  # a retry of this round: the draft is already paid for
    else:
        lines: list[str] = []
        async for line in FakeLLM.complete(state):
            lines.append(line)
            await ctx.put_stream({"iteration": ctx.iteration, "line": len(lines), "text": line})
        source = "".join(lines)
        await ctx.checkpoint(Draft(iteration=ctx.iteration, source=source))
    failures = run_unit_tests(source)
    ctx.logger.info("round %d: %d failing unit tests", ctx.iteration, len(failures))
    if failures:
        rounds = [*state.rounds, Round(iteration=ctx.iteration, failures=failures)]
        return dagnats.Continue(state.model_copy(update={"rounds": rounds}))
    return Patch(issue=state.issue, source=source, iterations=ctx.iteration + 1)


@worker.task(timeout="5m")
def run_test_suite(ctx: dagnats.TaskContext, patch: Patch) -> SuiteReport:
    # Sync: CPU-bound work runs in a worker thread, off the event loop.
    failures = run_unit_tests(patch.source)
    return SuiteReport(patch=patch, passed=len(UNIT_TESTS) - len(failures), failed=len(failures))


@worker.task()
async def merge(ctx: dagnats.TaskContext, inp: MergeIn) -> MergeResult:
    if inp.test.failed:
        raise dagnats.NonRetryableError(f"{inp.test.failed} tests fail; refusing to merge")
    commit = hashlib.sha1(inp.test.patch.source.encode()).hexdigest()[:12]
    return MergeResult(
        repo=inp.test.patch.issue.repo,
        branch=f"fix-{commit[:7]}",
        commit=commit,
        reviewer=inp.review.reviewer,
        iterations=inp.test.patch.iterations,
    )


def expected_stream() -> list[dict[str, object]]:
    """The chunks write_code streams over a whole run (three rounds), in order."""
    chunks: list[dict[str, object]] = []
    for i, draft in enumerate(DRAFTS):
        for n, line in enumerate(draft.splitlines(keepends=True), 1):
            chunks.append({"iteration": i, "line": n, "text": line})
    return chunks
