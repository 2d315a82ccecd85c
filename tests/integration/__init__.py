"""Integration tests against a real nats-server; helpers: run_helpers, worker_harness."""
