"""Human-in-the-loop: a deploy that waits for an approval token to be approved or rejected.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.approval.worker:worker
    python -m examples.approval.trigger approve

Its tests: ``pytest examples/approval``.
"""
