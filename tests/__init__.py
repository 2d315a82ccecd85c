"""The test suite: unit (pure), integration (real nats-server), e2e (subprocesses)."""
