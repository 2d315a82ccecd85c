""" "Why is my run stuck?": queued steps no live worker serves, and the system at a glance.

A task message waits on ``task.<task>[.<group>]`` until a worker binds to that subject's
durable; if no worker in the directory (the ``workers`` KV bucket, 60 s TTL) serves that
task and group, the run can only wait. ``run status``, ``run start --watch``, ``dagnats
status`` and the console say so instead of showing ``queued`` forever.

An ``agent`` step's group comes from the engine's agent routes, which each live engine
publishes in its heartbeat (``engine_leases``); when live engines route it differently the
diagnosis names every group it may wait in rather than pick one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dagnats import protocol
from dagnats._nats import overview
from dagnats._nats.leases import scan_view
from dagnats._nats.types import JetStreamContext
from dagnats.dag.definition.agents import agent_group
from dagnats.dag.definition.models import TASK_STEP_TYPES, StepDef, WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.state import RunState
from dagnats.protocol.partitions import ENGINE_CONSUMER_PREFIX

Served = frozenset[tuple[str, str | None]]
Routes = Mapping[str, str]
NO_ROUTES: tuple[Routes, ...] = ({},)


@dataclass(frozen=True)
class Unserved:
    """A queued step whose task no live worker serves."""

    step_id: str
    task: str
    group: str | None
    routed_to: tuple[str | None, ...] = ()
    """Set when live engines' agent routes disagree: every group the step may wait in."""

    @property
    def reason(self) -> str:
        where = f" in worker group '{self.group}'" if self.group else ""
        if len(self.routed_to) < 2:
            return f"no worker serves task '{self.task}'{where}"
        groups = ", ".join(f"'{g}'" if g else "ungrouped" for g in self.routed_to)
        return (
            f"engines disagree on the agent routes of task '{self.task}' ({groups}); "
            f"no worker serves it{where or ' ungrouped'}"
        )

    @property
    def message(self) -> str:
        return f"step '{self.step_id}' is queued: {self.reason}"


def served_by(workers: Iterable[Mapping[str, Any]]) -> Served:
    """(task, group) pairs the workers bind to; group ``None`` is the ungrouped subject.

    A directory entry lists ``serves`` (exact pairs); an entry without it (an older worker)
    is read as the worker's default: each task ungrouped and in each of its groups.
    """
    out: set[tuple[str, str | None]] = set()
    for w in workers:
        serves = w.get("serves")
        if isinstance(serves, list):
            out.update((str(p[0]), p[1] if p[1] is None else str(p[1])) for p in serves)
            continue
        groups: list[str | None] = [None, *(str(g) for g in w.get("groups") or [])]
        out.update((str(t), g) for t in w.get("tasks") or [] for g in groups)
    return frozenset(out)


def groups_of(step: StepDef, routes: Sequence[Routes]) -> list[str | None]:
    """The worker groups the engines (one route map each) send ``step``'s task to."""
    if step.type != "agent":
        return [step.worker_group]
    out: list[str | None] = []
    for r in routes or NO_ROUTES:
        g = agent_group(step.metadata, step.worker_group, r)
        if g not in out:
            out.append(g)
    return out


def unserved_steps(
    defn: WorkflowDef, run: RunState, served: Served, routes: Sequence[Routes] = NO_ROUTES
) -> list[Unserved]:
    """The run's queued task steps (or map items) whose (task, group) nobody serves;
    ``routes`` are the live engines' agent routes (one map per engine)."""
    out: list[Unserved] = []
    for step in defn.steps:
        state = run.steps.get(step.id)
        if state is None or step.type not in TASK_STEP_TYPES:
            continue
        queued = state.status == "queued" or any(i.status == "queued" for i in state.items or [])
        task = step.task or step.id
        groups = groups_of(step, routes)
        missing = [g for g in groups if (task, g) not in served]
        if queued and missing:
            out.append(
                Unserved(step.id, task, missing[0], tuple(groups) if len(groups) > 1 else ())
            )
    return out


def engine_routes(engines: Mapping[str, Mapping[str, object]]) -> list[Routes]:
    """Each live engine's agent routes from its heartbeat (none: an engine without any)."""
    out: list[Routes] = []
    for beat in engines.values():
        raw = beat.get("agent_routes")
        routes = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if routes not in out:
            out.append(routes)
    return out


def may_be_stuck(run: RunState) -> bool:
    """Whether the run has a queued step (or map item), so the directory is worth a look."""
    if run.terminal:
        return False
    return any(
        s.status == "queued" or any(i.status == "queued" for i in s.items or [])
        for s in run.steps.values()
    )


async def diagnose_run(js: JetStreamContext, defn_doc: Any, run: RunState) -> list[Unserved]:
    """What holds ``run`` up, read from the worker directory now (``[]`` when nothing)."""
    if not may_be_stuck(run):
        return []
    workers = await overview.read_workers(js) or []
    defn = load_definition(defn_doc)
    routes: list[Routes] = []
    if any(s.type == "agent" for s in defn.steps):  # only agent steps follow the routes
        routes = engine_routes((await scan_view(js)).engines)
    return unserved_steps(defn, run, served_by(workers), routes)


@dataclass
class EngineRow:
    """A live engine (its heartbeat in ``engine_leases``) and the partitions it holds."""

    engine_id: str
    host: str
    pid: int
    started: str
    partitions: list[int]


@dataclass
class PartitionRow:
    """One history partition: its engine consumer's backlog and the engine holding it."""

    partition: int
    consumer: str
    holder: str | None
    epoch: int | None
    pending: int
    ack_pending: int
    waiting: int


@dataclass
class SystemStatus:
    """Engines and the partitions they hold, workers, queue depths, dead letters."""

    engines: list[EngineRow] = field(default_factory=list)
    partitions: list[PartitionRow] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    queues: list[overview.QueueDepth] = field(default_factory=list)
    dead_letters: int = 0
    unserved_queues: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def system_status(js: JetStreamContext) -> SystemStatus:
    workers = await overview.read_workers(js) or []
    served = served_by(workers)
    queues = await overview.queue_depths(js)
    engines, partitions = await engines_and_partitions(js)
    return SystemStatus(
        engines=engines,
        partitions=partitions,
        workers=workers,
        queues=queues,
        dead_letters=await overview.stream_messages(js, protocol.DLQ_STREAM),
        unserved_queues=[
            f"{d.messages} task message(s) on {d.subject}: {Unserved('', d.task, d.group).reason}"
            for d in queues
            if (d.task, d.group) not in served
        ],
    )


async def engines_and_partitions(
    js: JetStreamContext,
) -> tuple[list[EngineRow], list[PartitionRow]]:
    """Who holds which partition (the lease bucket) beside each partition's backlog."""
    view = await scan_view(js)
    rows = []
    for c in await overview.consumers(js, protocol.HISTORY_STREAM):
        if not c.name.startswith(ENGINE_CONSUMER_PREFIX):
            continue
        p = int(c.name.removeprefix(ENGINE_CONSUMER_PREFIX))
        rows.append(
            PartitionRow(
                partition=p,
                consumer=c.name,
                holder=view.holders.get(p),
                epoch=view.epochs.get(p),
                pending=c.pending,
                ack_pending=c.ack_pending,
                waiting=c.waiting,
            )
        )
    rows.sort(key=lambda r: r.partition)
    engines = [
        EngineRow(
            engine_id=engine_id,
            host=str(beat.get("host", "")),
            pid=int(str(beat.get("pid", 0))),
            started=str(beat.get("started", "")),
            partitions=sorted(p for p, holder in view.holders.items() if holder == engine_id),
        )
        for engine_id, beat in sorted(view.engines.items())
    ]
    return engines, rows
