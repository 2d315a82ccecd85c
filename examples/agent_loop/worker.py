"""A research "agent" that gathers one note per iteration until it has enough.

Run with: ``dagnats worker examples.agent_loop.worker:worker``.

Each iteration does one expensive call (``think``), stores its result with
``ctx.checkpoint`` and then returns ``dagnats.Continue(next_state)`` for another iteration, or
the final ``Answer``. If an attempt fails after its checkpoint (here: a simulated crash), the
retry of that iteration loads the checkpoint instead of paying for the call again.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="agent-loop-worker")

FACTS = (
    "NATS JetStream persists messages in streams.",
    "A durable consumer remembers what it delivered.",
    "KV buckets are streams with one subject per key.",
    "Object stores chunk large values into messages.",
    "Work-queue streams hand each message to one consumer.",
    "Ordered consumers replay a subject in sequence.",
    "Message ids let the server drop duplicate publishes.",
)


class Research(BaseModel):
    """The loop's state: the first iteration gets the run input, later ones the Continue value."""

    question: str
    notes_needed: int = 3
    notes: list[str] = []
    # Demo knob: fail the first attempt of this iteration *after* its checkpoint was stored.
    crash_at_iteration: int | None = None


class Progress(BaseModel):
    """What one iteration stores with ``ctx.checkpoint``."""

    iteration: int
    note: str


class Answer(BaseModel):
    question: str
    notes: list[str]
    iterations: int


class ThinkCounter:
    """Counts the expensive calls, so a test can see that a checkpoint saved one."""

    calls = 0


async def think(question: str, iteration: int) -> str:
    """Stands in for an LLM or tool call: slow and costly in real life, deterministic here."""
    ThinkCounter.calls += 1
    return FACTS[iteration % len(FACTS)]


@worker.task(timeout="30s")
async def research(
    ctx: dagnats.TaskContext, state: Research
) -> Answer | dagnats.Continue[Research]:
    saved = await ctx.load_checkpoint(Progress)
    if saved is not None and saved.iteration == ctx.iteration:
        # An earlier attempt of this very iteration got this far: reuse its work.
        ctx.logger.info("iteration %d: resuming from its checkpoint", ctx.iteration)
        note = saved.note
    else:
        note = await think(state.question, ctx.iteration)
        await ctx.checkpoint(Progress(iteration=ctx.iteration, note=note))
    if state.crash_at_iteration == ctx.iteration and ctx.attempt == 1:
        raise RuntimeError(f"simulated crash in iteration {ctx.iteration}")
    notes = [*state.notes, note]
    if len(notes) >= state.notes_needed:
        return Answer(question=state.question, notes=notes, iterations=ctx.iteration + 1)
    return dagnats.Continue(state.model_copy(update={"notes": notes}))
