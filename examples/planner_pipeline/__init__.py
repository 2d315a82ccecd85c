"""A planner step that splits an issue into per-file agent steps, from a JSON file.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.planner_pipeline.worker:worker
    python -m examples.planner_pipeline.trigger

Its tests: ``pytest examples/planner_pipeline``.
"""
