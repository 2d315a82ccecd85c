"""Runs that start by themselves: a cron and webhook report, an HTTP endpoint answered by a run.

Run from the repository root (the ``examples`` package is not installed with dagnats,
so ``python -m examples...`` finds no module elsewhere), with ``dagnats serve`` running::

    dagnats workflow register examples/triggers/reports.json
    dagnats worker examples.triggers.worker:worker
    python -m examples.triggers.send_webhook

Its tests: ``pytest examples/triggers``.
"""
