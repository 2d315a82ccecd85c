"""A parent workflow that calls a child workflow (``wf.sub_workflow``) and sleeps durably.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.sub_workflows.worker:worker
    python -m examples.sub_workflows.trigger

Its tests: ``pytest examples/sub_workflows``.
"""
