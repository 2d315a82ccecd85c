"""An agent loop: ``Continue`` until done, bounded by ``max_iterations``, with checkpoints.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.agent_loop.worker:worker
    python -m examples.agent_loop.trigger

Its tests: ``pytest examples/agent_loop``.
"""
