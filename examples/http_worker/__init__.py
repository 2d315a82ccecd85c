"""A worker in any language: one step over HTTP (the /v1 bridge), one in Python.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.http_worker.workflow:worker
    python -m examples.http_worker.http_worker http://127.0.0.1:8080

Its tests: ``pytest examples/http_worker``.
"""
