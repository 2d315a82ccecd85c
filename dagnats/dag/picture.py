"""A workflow or a run as a picture: Mermaid text, or a terminal drawing with rich.

Pure: from a definition and, optionally, a run's state (no I/O). The CLI prints these
(``dagnats workflow graph``, ``dagnats run graph``); the docs embed the Mermaid of each
example. Steps are drawn in layers (a step sits one layer below its deepest dependency);
handler steps (``on_failure``, ``compensate``) hang off the steps they serve with dotted
edges, because they never start on their own.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from dagnats.dag.definition.graph import handler_steps, topological_order
from dagnats.dag.definition.models import StepDef, WorkflowDef
from dagnats.dag.machine.state import RunState, StepState

# Step status -> (rich style, Mermaid fill, Mermaid stroke). Pending is the default.
STATUS_STYLES: dict[str, tuple[str, str, str]] = {
    "pending": ("grey50", "#f4f4f5", "#a1a1aa"),
    "queued": ("yellow", "#fef9c3", "#ca8a04"),
    "running": ("bold blue", "#dbeafe", "#2563eb"),
    "completed": ("green", "#dcfce7", "#16a34a"),
    "failed": ("bold red", "#fee2e2", "#dc2626"),
    "skipped": ("dim", "#f4f4f5", "#d4d4d8"),
    "cancelled": ("magenta", "#fae8ff", "#a21caf"),
    "recovered": ("cyan", "#cffafe", "#0891b2"),
}
# Mermaid node shapes by step type: the opening and closing brackets.
_SHAPES: dict[str, tuple[str, str]] = {
    "normal": ("[", "]"),
    "agent_loop": ("[[", "]]"),
    "map": ("[/", "/]"),
    "sub_workflow": ("[[", "]]"),
    "sleep": ("([", "])"),
    "wait_for_event": ("([", "])"),
    "approval": ("{{", "}}"),
    "respond": ("[\\", "\\]"),
}


def layers(defn: WorkflowDef) -> dict[str, int]:
    """Step id -> its layer: 0 for a step without dependencies, else 1 + its deepest one."""
    by_id = {s.id: s for s in defn.steps}
    out: dict[str, int] = {}
    for step_id in topological_order(defn):
        deps = by_id[step_id].depends_on
        out[step_id] = 1 + max(out[d] for d in deps) if deps else 0
    return out


def _handler_edges(defn: WorkflowDef) -> list[tuple[str, str, str]]:
    """(served step, handler step, "on_failure" | "compensate") in definition order."""
    edges: list[tuple[str, str, str]] = []
    for s in defn.steps:
        if s.on_failure is not None:
            edges.append((s.id, s.on_failure, "on_failure"))
        if s.compensate is not None:
            edges.append((s.id, s.compensate, "compensate"))
    return edges


def step_label(step: StepDef, state: StepState | None) -> str:
    """One line about a step: its id, its task or type, and with a state its status."""
    kind = step.task if step.type == "normal" and step.task and step.task != step.id else None
    if step.type != "normal":
        kind = step.type if not step.task else f"{step.type}: {step.task}"
    text = step.id if kind is None else f"{step.id} ({kind})"
    if state is None:
        return text
    status = state.status
    extras: list[str] = []
    if state.attempts > 1:
        extras.append(f"attempt {state.attempts}")
    if state.waiting and status not in ("completed", "failed"):
        extras.append(f"waiting: {state.waiting}")
    if state.items:
        extras.append(f"{state.items_done}/{len(state.items)} items")
    return f"{text}: {status}" + (f" ({', '.join(extras)})" if extras else "")


def _mermaid_text(text: str) -> str:
    # Mermaid labels are quoted; a quote or a bracket inside would end them early.
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(defn: WorkflowDef, run: RunState | None = None) -> str:
    """The DAG as a Mermaid ``flowchart`` (top-down); with a run, nodes coloured by status.

    Node ids are ``s0``, ``s1``, ... (a step id such as ``end`` is a Mermaid keyword); the
    step id is the label.
    """
    node = {s.id: f"s{i}" for i, s in enumerate(defn.steps)}
    lines = ["flowchart TD"]
    for s in defn.steps:
        state = _state_of(run, s.id)
        left, right = _SHAPES.get(s.type, ("[", "]"))
        label = _mermaid_text(step_label(s, state))
        lines.append(f'    {node[s.id]}{left}"{label}"{right}')
    for s in defn.steps:
        for dep in s.depends_on:
            lines.append(f"    {node[dep]} --> {node[s.id]}")
    for served, handler, kind in _handler_edges(defn):
        lines.append(f"    {node[served]} -. {kind} .-> {node[handler]}")
    if run is not None:
        used: dict[str, list[str]] = {}
        for s in defn.steps:
            status = _status_of(run, s.id)
            used.setdefault(status, []).append(node[s.id])
        for status, ids in used.items():
            _style, fill, stroke = STATUS_STYLES.get(status, STATUS_STYLES["pending"])
            lines.append(f"    classDef {status} fill:{fill},stroke:{stroke}")
            lines.append(f"    class {','.join(ids)} {status}")
    return "\n".join(lines) + "\n"


def terminal(defn: WorkflowDef, run: RunState | None = None) -> Group:
    """A drawing for a terminal: a header, then each layer's steps as coloured boxes with
    the steps they wait for (``<- a, b``), then the handler steps."""
    handlers = handler_steps(defn)
    by_layer: dict[int, list[StepDef]] = {}
    depth = layers(defn)
    for s in defn.steps:
        if s.id not in handlers:
            by_layer.setdefault(depth[s.id], []).append(s)
    rows: list[Text] = [_header(defn, run)]
    for level in sorted(by_layer):
        rows.append(Text(f"layer {level}", style="bold"))
        for s in by_layer[level]:
            rows.append(_step_row(s, run, "  "))
    edges = _handler_edges(defn)
    if edges:
        rows.append(Text("handlers", style="bold"))
        by_id = {s.id: s for s in defn.steps}
        for served, handler, kind in edges:
            row = _step_row(by_id[handler], run, "  ", deps=False)
            row.append(f"  <- {kind} of {served}", style="italic")
            rows.append(row)
    return Group(*rows)


def _header(defn: WorkflowDef, run: RunState | None) -> Text:
    head = Text(f"{defn.name} {defn.version}", style="bold")
    if run is not None:
        head.append(f"  run {run.run_id}")
        if run.revision is not None:
            head.append(f" (revision {run.revision})")
        head.append(f"  {run.status}", style=_run_style(run.status))
    head.append(f"  {len(defn.steps)} steps", style="dim")
    return head


def _run_style(status: str) -> str:
    if status == "compensated":
        return STATUS_STYLES["recovered"][0]
    return STATUS_STYLES.get(status, STATUS_STYLES["running"])[0]


def _step_row(step: StepDef, run: RunState | None, indent: str, *, deps: bool = True) -> Text:
    state = _state_of(run, step.id)
    status = "pending" if state is None else state.status
    style = STATUS_STYLES.get(status, STATUS_STYLES["pending"])[0]
    marker = "●" if run is not None else "○"
    row = Text(indent)
    row.append(f"{marker} [ {step_label(step, state)} ]", style=style if run is not None else "")
    if deps and step.depends_on:
        row.append(f"  <- {', '.join(step.depends_on)}", style="dim")
    return row


def _state_of(run: RunState | None, step_id: str) -> StepState | None:
    if run is None:
        return None
    return run.steps.get(step_id) or StepState()


def _status_of(run: RunState, step_id: str) -> str:
    state = run.steps.get(step_id)
    return "pending" if state is None else state.status
