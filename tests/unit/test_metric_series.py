"""``metrics.series``: the labelled series prometheus-client gives, remembered and bounded."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from dagnats.telemetry import metrics


def _counter(registry: CollectorRegistry) -> Counter:
    return Counter("t_things", "things", ["kind"], registry=registry)


def test_a_series_is_the_one_labels_gives_and_counts_there() -> None:
    registry = CollectorRegistry()
    things = _counter(registry)
    metrics.series(things, "a").inc()
    metrics.series(things, "a").inc(2)
    assert metrics.series(things, "a") is things.labels("a")
    assert registry.get_sample_value("t_things_total", {"kind": "a"}) == 3.0


def test_series_of_two_metrics_with_the_same_labels_stay_apart() -> None:
    registry = CollectorRegistry()
    things = _counter(registry)
    waits = Histogram("t_wait_seconds", "waits", ["kind"], registry=registry)
    metrics.series(things, "a").inc()
    metrics.series(waits, "a").observe(0.5)
    assert registry.get_sample_value("t_things_total", {"kind": "a"}) == 1.0
    assert registry.get_sample_value("t_wait_seconds_sum", {"kind": "a"}) == 0.5


def test_the_memo_never_holds_more_than_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_CACHED_SERIES", 5)
    registry = CollectorRegistry()
    things = _counter(registry)
    for i in range(12):
        metrics.series(things, str(i)).inc()
        assert len(metrics._series) <= 5
    assert registry.get_sample_value("t_things_total", {"kind": "11"}) == 1.0
    assert registry.get_sample_value("t_things_total", {"kind": "0"}) == 1.0
