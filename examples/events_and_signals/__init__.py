"""External events (``wait_for_event``, ``publish_event``) and signals (``wait_for_signal``).

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats worker examples.events_and_signals.worker:worker
    python -m examples.events_and_signals.trigger

Its tests: ``pytest examples/events_and_signals``.
"""
