"""The NATS seam: the one package that imports nats-py.

May import :mod:`dagnats.protocol`, :mod:`dagnats.dag` and :mod:`dagnats.errors`; the roles
(engine, worker, client) and the server use it and never ``nats`` itself (ruff TID251).

- ``types``: the nats-py types it hands out; ``connection``: connect and request
- ``resources``: streams, buckets and consumers, created idempotently
- ``feed``, ``consumers``, ``publish``, ``history``: reading and writing streams
- ``stores`` and ``state``: snapshots, definitions, and a run's current state
- ``cas``, ``kvscan``: compare-and-swap and KV reads, with nats-py's errors translated
- ``payloads``, ``signals``, ``checkpoints``: the object store and the KV records
"""
