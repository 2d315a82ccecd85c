"""Methodology: backoff math by table; retry paths driven through advance() with a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dagnats.dag.definition.models import RetryPolicy
from dagnats.dag.definition.rules import load_definition
from dagnats.dag.machine.actions import DeadLetter, DispatchTask, FinishRun, ScheduleTimer
from dagnats.dag.machine.advance import retry_delay_ns
from dagnats.dag.machine.retry import effective_policy, retries_left
from dagnats.protocol.durations import SECOND
from tests.unit.advance_harness import Sim, of, records, wf

S = SECOND


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(strategy="fixed", initial_delay=2), [2, 2, 2, 2]),
        (RetryPolicy(strategy="linear", initial_delay=2), [2, 4, 6, 8]),
        (RetryPolicy(strategy="exponential", initial_delay=1), [1, 2, 4, 8]),
        (RetryPolicy(strategy="exponential", initial_delay=1, multiplier=3.0), [1, 3, 9, 27]),
        (
            RetryPolicy(strategy="exponential", initial_delay=1, max_delay=5),
            [1, 2, 4, 5],
        ),
        (RetryPolicy(strategy="linear", initial_delay=3, max_delay=7), [3, 6, 7, 7]),
        (RetryPolicy(strategy="fixed", initial_delay=9, max_delay=4), [4, 4, 4, 4]),
    ],
)
def test_retry_delay_strategies_and_cap(policy: RetryPolicy, delays: list[int]) -> None:
    assert [retry_delay_ns(policy, n) // S for n in (1, 2, 3, 4)] == delays


def test_huge_exponent_is_capped_not_overflowing() -> None:
    policy = RetryPolicy(strategy="exponential", initial_delay=1, multiplier=100.0)
    # Clamped to an hour (Go's bound), however large the exponent.
    assert retry_delay_ns(policy, 10_000) == 3600 * S


def test_delays_are_clamped_to_one_ms_and_one_hour_and_max_delay_zero_is_no_cap() -> None:
    zero = RetryPolicy.model_validate({"initial_delay": 0, "max_delay": 0})
    assert zero.max_delay is None and retry_delay_ns(zero, 1) == 1_000_000
    no_cap = RetryPolicy.model_validate(
        {"strategy": "linear", "initial_delay": "20m", "max_delay": 0}
    )
    assert [retry_delay_ns(no_cap, n) // S for n in (1, 2, 3, 4)] == [1200, 2400, 3600, 3600]
    capped = RetryPolicy.model_validate({"strategy": "linear", "initial_delay": 1, "max_delay": 1})
    assert retry_delay_ns(capped, 5) == 1_000_000  # 1 ns, capped at 1 ns, clamped to 1 ms


def test_legacy_retries_are_a_fixed_five_second_policy() -> None:
    sim = Sim(wf({"id": "a", "retries": 2}))
    sim.start()
    for attempt in (1, 2):
        acts = sim.fail("a")
        assert sim.timer("retry", acts).fire_at == sim.now + timedelta(seconds=5)
        sim.fire(sim.timer("retry", acts))
        assert sim.step("a").attempts == attempt + 1
    acts = sim.fail("a")
    assert sim.state.status == "failed"


def test_retry_and_default_retry_win_over_legacy_retries() -> None:
    defn = load_definition(
        {"name": "w", "default_retry": {"max_attempts": 7}, "steps": [{"id": "a", "retries": 2}]}
    )
    assert effective_policy(defn, defn.steps[0]).max_attempts == 7


def test_max_attempts_counts_retries_after_the_first_failure() -> None:
    policy = RetryPolicy(max_attempts=2)
    assert [retries_left(policy, n) for n in (1, 2, 3)] == [True, True, False]


def test_policy_precedence() -> None:
    defn = wf(
        {"id": "a", "retry": {"max_attempts": 5}},
        {"id": "b"},
        default_retry={"max_attempts": 2},
    )
    assert effective_policy(defn, defn.step("a")).max_attempts == 5
    assert effective_policy(defn, defn.step("b")).max_attempts == 2
    assert effective_policy(wf({"id": "c"}), wf({"id": "c"}).step("c")).max_attempts == 0


def test_retries_then_succeeds_with_exponential_delays() -> None:
    sim = Sim(
        wf(
            {
                "id": "a",
                "retry": {"max_attempts": 3, "strategy": "exponential", "initial_delay": "1s"},
            }
        )
    )
    sim.start()
    delays = []
    for attempt in (1, 2, 3):
        acts = sim.fail("a", f"e{attempt}")
        assert (sim.step("a").status, sim.step("a").waiting) == ("pending", "retry")
        rec = records(acts, "step.retrying")[0]
        assert rec.data["next_attempt"] == attempt + 1 and rec.data["error"] == f"e{attempt}"
        timer = sim.timer("retry", acts)
        assert timer.data == {"attempt": attempt + 1, "iteration": 0}
        delays.append(timer.fire_at - sim.now)
        acts = sim.fire(timer)
        task = of(acts, DispatchTask)[0]
        assert task.attempt == attempt + 1 and task.dedup_id == f"r1.a.{attempt + 1}.0"
        assert task.idempotency_key == "r1.a"
    assert delays == [timedelta(seconds=s) for s in (1, 2, 4)]
    sim.complete("a", "ok")
    assert sim.state.status == "completed" and sim.step("a").attempts == 4


def test_exhausted_retries_fail_the_run_with_a_dead_letter() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 1, "initial_delay": "1s"}}, {"id": "b"}))
    sim.start({"k": 1})
    sim.fail("a")
    sim.fire(sim.timer("retry"))
    acts = sim.fail("a", "still broken", error_type="IOError")
    dead = of(acts, DeadLetter)[0]
    assert (dead.step_id, dead.task, dead.input, dead.attempts) == ("a", "a", {"k": 1}, 2)
    assert dead.error["message"] == "still broken" and dead.error["type"] == "IOError"
    assert sim.state.status == "failed"
    assert sim.state.error is not None and sim.state.error.step_id == "a"
    assert "still broken" in sim.state.error.message and sim.state.failed_step == "a"
    assert sim.step("b").status == "cancelled"
    finish = of(acts, FinishRun)[0]
    assert finish.status == "failed" and finish.error is not None


def test_zero_max_attempts_means_no_retry() -> None:
    sim = Sim(wf({"id": "a"}))
    sim.start()
    acts = sim.fail("a")
    assert not of(acts, ScheduleTimer) and sim.state.status == "failed"


def test_non_retryable_failure_skips_the_retry_policy() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 5}}))
    sim.start()
    acts = sim.fail("a", retryable=False)
    assert of(acts, DeadLetter) and sim.state.status == "failed"
    assert sim.step("a").attempts == 1


def test_retry_after_overrides_the_policy_delay() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 2, "initial_delay": "1h"}}))
    sim.start()
    acts = sim.fail("a", retry_after_ns=3 * S)
    assert sim.timer("retry", acts).fire_at == sim.now + timedelta(seconds=3)


def test_zero_delay_retries_after_the_one_ms_floor() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 1, "initial_delay": 0}}))
    sim.start()
    acts = sim.fail("a")
    assert sim.timer("retry", acts).fire_at == sim.now + timedelta(milliseconds=1)


def test_default_retry_applies() -> None:
    sim = Sim(wf({"id": "a"}, default_retry={"max_attempts": 1, "initial_delay": "5s"}))
    sim.start()
    assert sim.timer("retry", sim.fail("a")).fire_at == sim.now + timedelta(seconds=5)


def test_stale_or_duplicate_retry_timer_is_a_no_op() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 3, "initial_delay": "1s"}}))
    sim.start()
    timer = sim.timer("retry", sim.fail("a"))
    sim.fire(timer)
    assert sim.fire(timer) == []  # fired twice
    assert sim.step("a").attempts == 2


def test_worker_lost_is_a_failed_attempt() -> None:
    sim = Sim(wf({"id": "a", "retry": {"max_attempts": 1, "initial_delay": "1s"}}))
    sim.start()
    data = {"error": "worker lost", "error_type": "WorkerLost", "retryable": True}
    acts = sim.send("step.worker_lost", "a", attempt=1, iteration=0, data=data)
    assert sim.timer("retry", acts).data["attempt"] == 2
    sim.fire(sim.timer("retry", acts))
    sim.send("step.worker_lost", "a", attempt=2, iteration=0, data=data)
    assert sim.state.status == "failed"
    err = sim.step("a").error
    assert err is not None and err.type == "WorkerLost"


def test_step_timeout_backstop_is_a_retryable_failed_attempt() -> None:
    sim = Sim(wf({"id": "a", "timeout": "10s", "retry": {"max_attempts": 1}}))
    sim.start()
    acts = sim.started("a")
    backstop = sim.timer("step_timeout", acts)
    assert backstop.fire_at == sim.now + timedelta(seconds=20)  # 10s * 1.5 + 5s
    assert backstop.data == {"attempt": 1, "iteration": 0}
    acts = sim.fire(backstop)
    err = sim.step("a").error
    assert err is not None and err.type == "Timeout" and "10s" in err.message
    assert (sim.step("a").status, sim.step("a").waiting) == ("pending", "retry")
    sim.fire(sim.timer("retry", acts))
    sim.started("a")
    sim.complete("a", 1)
    assert sim.fire(backstop) == []  # the old attempt's backstop is stale
    assert sim.state.status == "completed"


def test_backstop_of_a_finished_attempt_is_stale() -> None:
    sim = Sim(wf({"id": "a", "timeout": "10s"}, {"id": "b", "depends_on": ["a"]}))
    sim.start()
    backstop = sim.timer("step_timeout", sim.started("a"))
    sim.complete("a", 1)
    assert sim.fire(backstop) == []
    assert sim.state.status == "running"
