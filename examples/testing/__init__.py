"""A subscription renewal with a week-long trial, a flaky charge and a manager's approval,
tested with time skipping and each injected fault.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.testing.worker:worker
    python -m examples.testing.workflow

Its tests: ``pytest examples/testing``.
"""
