"""An LLM-style coding pipeline: plan -> code (agent loop, streamed) -> test -> review -> merge.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.coding_pipeline.worker:worker
    dagnats worker examples.coding_pipeline.worker:gpu_worker
    python -m examples.coding_pipeline.trigger

Its tests: ``pytest examples/coding_pipeline``.
"""
