"""A subscription renewal with a week-long trial, a flaky charge and a manager's approval,
tested with time skipping and each injected fault (run from the repository root:
``pytest examples/testing``)."""
