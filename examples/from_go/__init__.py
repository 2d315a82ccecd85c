"""Workflow files as the Go DagNats writes them, run with Python handlers.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats workflow register examples/from_go/order.go.json
    dagnats worker examples.from_go.worker:worker
    dagnats worker examples.from_go.checkout_worker:worker

Its tests: ``pytest examples/from_go``.
"""
