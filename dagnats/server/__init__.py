"""Composition: embedded nats-server, API service, HTTP gateway and ``dagnats serve``."""
