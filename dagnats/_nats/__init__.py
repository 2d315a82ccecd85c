"""The one package that talks to nats-py directly: resources, pull feeds, KV helpers."""
