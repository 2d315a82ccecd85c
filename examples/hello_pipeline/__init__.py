"""The seed tutorial: greet -> uppercase -> reverse, with retry and timeout options.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.hello_pipeline.worker:worker
    python -m examples.hello_pipeline.trigger World

Its tests: ``pytest examples/hello_pipeline``.
"""
