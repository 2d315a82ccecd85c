"""End-to-end tests: real processes (``python -m dagnats ...``); deselect with ``-m "not e2e"``."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end test with real subprocesses (deselect with -m 'not e2e')"
    )
