"""Methodology: tracing costs nothing when it is off. Without the SDK (this process sets no
tracer provider) no header is added and spans are no-ops; without the package (a fresh
interpreter in which ``opentelemetry`` cannot be imported) the module says so and every call
returns at once. The traced path itself is proved across processes in tests/e2e."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagnats._nats.publish import msg_id
from dagnats.telemetry import tracing

ROOT = Path(__file__).resolve().parent.parent.parent

ABSENT = """
import sys
sys.modules["opentelemetry"] = None
from dagnats.telemetry import tracing
from dagnats._nats.publish import msg_id
assert not tracing.ENABLED
assert msg_id("x") == {"Nats-Msg-Id": "x"}
parent = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
with tracing.span("s", {"a": 1}, parent=parent) as s:
    assert s is None
tracing.annotate({"a": 1}); tracing.mark_failed(None, "x")
print("ok")
"""


def test_without_an_sdk_nothing_is_stamped() -> None:
    assert tracing.ENABLED
    assert msg_id("abc") == {"Nats-Msg-Id": "abc"}
    with tracing.span("dagnats.test", {tracing.RUN_ID: "r", tracing.STEP_ID: None}) as span:
        assert not span.is_recording()
        assert tracing.stamp({}) == {}


def test_without_the_package_every_call_is_a_no_op() -> None:
    out = subprocess.run(
        [sys.executable, "-c", ABSENT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
