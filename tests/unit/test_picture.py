"""The DAG pictures (``dagnats.dag.picture``): Mermaid text and the terminal drawing.

Methodology: small definitions built with the public builder cover every shape (fan-out,
fan-in, handler steps, each step type); the Mermaid is checked line by line (nodes, edges,
class assignments) and the terminal drawing through rich's recorded export, in plain text
(layers, dependencies) and with styles (a failed step is red).
"""

from __future__ import annotations

import io

from rich.console import Console

import dagnats
from dagnats.dag.definition.models import WorkflowDef
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.state import ItemState, RunState, StepError, StepState
from dagnats.dag.picture import _mermaid_text, layers, mermaid, step_label, terminal


def _diamond() -> WorkflowDef:
    wf = dagnats.Workflow("diamond")
    a = wf.step("a")
    b = wf.step("b", depends_on=[a], task="bee")
    c = wf.map("c", task="resize", depends_on=[a])
    wf.step("end", depends_on=[b, c], on_failure="cleanup")
    wf.step("cleanup")
    wf.approval("ok", depends_on=["end"])
    return load_definition(wf.to_dict())


def _render(defn: WorkflowDef, run: RunState | None = None) -> Console:
    console = Console(
        record=True, width=120, force_terminal=True, color_system="truecolor", file=io.StringIO()
    )
    console.print(terminal(defn, run))
    return console


def test_layers_are_longest_paths_from_the_roots() -> None:
    assert layers(_diamond()) == {"a": 0, "b": 1, "c": 1, "end": 2, "cleanup": 0, "ok": 3}


def test_mermaid_of_a_definition_has_every_node_and_edge() -> None:
    text = mermaid(_diamond())
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    s0["a"]' in lines
    assert '    s1["b (bee)"]' in lines
    assert '    s2[/"c (map: resize)"/]' in lines
    # "end" is a Mermaid keyword: node ids are positional, the step id is the label.
    assert '    s3["end"]' in lines
    assert '    s5{{"ok (approval)"}}' in lines
    edges = {line.strip() for line in lines if "-->" in line}
    assert edges == {"s0 --> s1", "s0 --> s2", "s1 --> s3", "s2 --> s3", "s3 --> s5"}
    assert "    s3 -. on_failure .-> s4" in lines
    assert "classDef" not in text


def test_mermaid_of_a_run_colours_each_status() -> None:
    run = RunState(
        run_id="r1",
        workflow="diamond",
        steps={
            "a": StepState(status="completed", attempts=1),
            "b": StepState(status="failed", attempts=3, error=StepError(message="boom")),
            "c": StepState(status="running", attempts=1),
        },
    )
    lines = mermaid(_diamond(), run).splitlines()
    assert '    s1["b (bee): failed (attempt 3)"]' in lines
    assert "    class s0 completed" in lines
    assert "    class s1 failed" in lines
    assert "    class s2 running" in lines
    assert "    class s3,s4,s5 pending" in lines  # steps the snapshot does not hold yet
    assert any(line.startswith("    classDef failed fill:#fee2e2") for line in lines)


def test_mermaid_labels_cannot_end_early() -> None:
    assert _mermaid_text('say "hi" <b>') == "say #quot;hi#quot; #lt;b#gt;"


def test_step_label_shows_attempts_waiting_and_items() -> None:
    defn = _diamond()
    by_id = {s.id: s for s in defn.steps}
    st = StepState(status="running", attempts=2, waiting="retry")
    assert step_label(by_id["a"], st) == "a: running (attempt 2, waiting: retry)"
    items = StepState(
        status="running", attempts=1, items_done=1, items=[ItemState() for _ in range(3)]
    )
    assert step_label(by_id["c"], items) == "c (map: resize): running (1/3 items)"
    assert step_label(by_id["a"], None) == "a"


def test_terminal_drawing_has_layers_dependencies_and_handlers() -> None:
    out = _render(_diamond()).export_text()
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[0] == "diamond 1.0  6 steps"
    assert lines.index("layer 0") < lines.index("layer 1") < lines.index("layer 2")
    assert "  ○ [ end ]  <- b, c" in lines
    assert "  ○ [ cleanup ]  <- on_failure of end" in lines


def test_terminal_drawing_of_a_run_colours_states() -> None:
    run = RunState(
        run_id="r9",
        workflow="diamond",
        status="failed",
        revision=2,
        steps={"a": StepState(status="completed"), "b": StepState(status="failed", attempts=2)},
    )
    console = _render(_diamond(), run)
    text = console.export_text(clear=False)
    html = console.export_html(inline_styles=True)
    assert "diamond 1.0  run r9 (revision 2)  failed" in text
    assert "● [ b (bee): failed (attempt 2) ]" in text
    assert "● [ c (map: resize): pending ]" in text
    assert "color: #800000" in html or "color: #ff0000" in html  # red for the failure
