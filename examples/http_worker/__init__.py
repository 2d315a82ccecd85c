"""A worker in any language: one step over HTTP (the /v1 bridge), one in Python."""
