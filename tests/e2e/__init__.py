"""End-to-end tests: real processes, the CLI, the tutorial."""
