"""Redrive: a batch of imports fails during an outage, then resumes where each run stopped.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.redrive.worker:worker
    python -m examples.redrive.trigger

Its tests: ``pytest examples/redrive``.
"""
