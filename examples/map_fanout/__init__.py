"""Fan-out / fan-in: fetch a list, ``wf.map`` a task over it, gather the results.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.map_fanout.worker:worker
    python -m examples.map_fanout.trigger docs.example

Its tests: ``pytest examples/map_fanout``.
"""
