"""A booking saga: compensations undo completed steps in reverse order; on_failure recovers.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.saga.worker:worker
    python -m examples.saga.trigger

Its tests: ``pytest examples/saga``.
"""
