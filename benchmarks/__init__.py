"""Benchmarks: dagnats against a raw-NATS floor measured in the same run."""
