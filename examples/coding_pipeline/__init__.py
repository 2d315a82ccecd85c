"""An LLM-style coding pipeline: plan -> code (agent loop, streamed) -> test -> review -> merge."""
