"""How much CPU a target leaves the processes, next to what they used.

A step costs every client the same NATS operations: a delivery, a publish whose ack it
awaits, an ack. The floor's one process does them for both sides of a step and nothing
else; its CPU per step is measured with the floor (``Floor.client_cpu_us_*``).

- One step after another (latency, seq40), the worker's and the engine's work alternate on
  one run's path, and a step takes about the CPU they spend on it (the benchmark prints
  both). A target of ``ratio`` x the floor's p50 ``T`` a step therefore leaves them at most
  ``ratio * T`` of CPU a step, and that only if nats-server and the wire took no time.
- Many at once (throughput), every process shares the machine's cores: a rate of ``ratio``
  x the floor's ``F`` steps/s leaves all of them together, nats-server included, at most
  ``cores / (ratio * F)`` of CPU a step, and any one dagnats process (the engine is one
  Python process: one core at most; nats-server has threads) ``1 / (ratio * F)``. The
  driver's own CPU (its starts and waits) shares the cores too and is not counted: the
  budget is generous.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.session import Floor
from benchmarks.stack import Stack

# Issue 10's targets (the report's table compares with these too).
RUN3_P50_RATIO = 1.8  # <= x (floor x 3)
THROUGHPUT_RATIO = 0.45  # >= x the floor's steps/s
SEQ40_RATIO = 1.25  # <= x (floor x 40)

ROLES = ("engine", "worker", "api", "nats-server")
CLIENTS = ("engine", "worker", "api")  # the dagnats processes (not nats-server)


class CpuMeter:
    """CPU each process of the stack has used since the meter was made, per unit."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.start = {r: stack.cpu_s(r) for r in ROLES}

    def per(self, units: int) -> dict[str, float]:
        """Microseconds of CPU per unit (a step, a run) for each process."""
        return {r: (self.stack.cpu_s(r) - c) / units * 1e6 for r, c in self.start.items()}


@dataclass(frozen=True)
class Budget:
    """The CPU a target allows per unit (a step, a run), what was used, and what the floor's
    client spent on the NATS operations of as many steps."""

    allowed_us: float
    used_us: float
    nats_ops_us: float
    roles: tuple[str, ...]
    each_allowed_us: float | None = None
    """Many at once: the most one dagnats process may use (one core at a time)."""
    each_used_us: float = 0.0
    """The most any one dagnats process used."""

    @property
    def fits(self) -> bool:
        each = self.each_allowed_us is None or self.each_used_us <= self.each_allowed_us
        return self.used_us <= self.allowed_us and each


def sequential(fl: Floor, ratio: float, steps: int, used: Mapping[str, float]) -> Budget:
    """One run of ``steps`` steps at a time; ``used``: CPU per run (or step), per role."""
    return Budget(
        allowed_us=ratio * steps * fl.p50_ms * 1e3,
        used_us=sum(used[r] for r in CLIENTS),
        nats_ops_us=steps * fl.client_cpu_us_one,
        roles=CLIENTS,
    )


def concurrent(fl: Floor, ratio: float, used: Mapping[str, float]) -> Budget:
    """A rate of ``ratio`` x the floor's on this machine's cores; ``used``: CPU per step."""
    cores = len(os.sched_getaffinity(0))  # the cores this process (and its children) may use
    one_core_us = 1e6 / (ratio * fl.steps_per_s)
    return Budget(
        allowed_us=cores * one_core_us,
        used_us=sum(used[r] for r in ROLES),
        nats_ops_us=fl.client_cpu_us_many + fl.server_cpu_us_many,
        roles=ROLES,
        each_allowed_us=one_core_us,
        each_used_us=max(used[r] for r in CLIENTS),
    )


def describe(b: Budget, ratio: float, unit: str, used: Mapping[str, float]) -> str:
    """One line for the benchmark's output."""
    parts = ", ".join(f"{r} {used[r]:.0f}" for r in b.roles)
    who = "the floor's client" if b.roles == CLIENTS else "the floor's client and nats-server"
    each = "" if b.each_allowed_us is None else f", {b.each_allowed_us:.0f} in any one of ours"
    return (
        f"  CPU budget at the {ratio:g}x target: at most {b.allowed_us:.0f} us a {unit}{each}; "
        f"used {b.used_us:.0f} ({parts}); the same NATS operations cost {who} "
        f"{b.nats_ops_us:.0f}"
    )
