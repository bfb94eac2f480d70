"""The race simulator follows the kernel's rules (issue 8; docs/KERNEL.md §4-5).

* The CPU running text_poke_bp is reached only by interrupt-context calls
  (do_IRQ) while it patches.
* Under spin a trap with a sync still to come deadlocks where interrupts
  are off: on do_IRQ, and always on the patching CPU.
* Trap phases are weighted by the time a call spends in them (or, under
  spin, by where a CPU's first call falls), not by the emulator's schedule
  counts.
"""

import math

import pytest

from workbench.race.simulator import RaceConfig, Workload, closed_form, load_outcomes, simulate
from workbench.race.timing import Timing

FIXED = Timing(irq_off_prob=0.0, ipi_base_ns=50_000.0)


@pytest.fixture(scope="module")
def seed():
    return load_outcomes("seed")


@pytest.fixture(scope="module")
def running():
    return load_outcomes("tracer_add_livepatch")


def test_one_cpu_traps_only_its_interrupts(seed):
    """At 1 CPU only do_IRQ, in interrupt context, reaches the CPU that patches."""
    cf = closed_form(RaceConfig("seed", "skip", cpus=1, timing=FIXED), seed)
    do_irq = dict(Workload().hot)["do_IRQ"]
    assert cf["trapped"] == pytest.approx(do_irq * 1e-9 * cf["window_ns"], rel=1e-12)
    assert cf["trapped"] < 200  # was 3.7e5: every function called at full rate by the patching CPU
    old = closed_form(RaceConfig("seed", "skip", cpus=1, timing=FIXED, patcher_calls=True), seed)
    assert old["trapped"] > 1e5


def test_spin_deadlocks_on_the_patching_cpu_and_in_do_irq(seed, running):
    one = closed_form(RaceConfig("seed", "spin", cpus=1), seed)
    # do_IRQ at 1000/s against a ~0.19 s window: the patching CPU's first interrupt traps
    assert one["deadlocks"] == pytest.approx(1.0, abs=1e-3)
    for s in ("skip", "emulate_new", "emulate_regs_caller", "emulate_old"):
        assert closed_form(RaceConfig("tracer_add_livepatch", s, cpus=24), running)["deadlocks"] == 0
    f = simulate(RaceConfig("tracer_add_livepatch", "spin", cpus=24), running, trials=20_000, seed=3)
    assert f.deadlocks_cf[0] > 5
    assert abs(f.deadlocks_mean[0] - f.deadlocks_cf[0]) < 4 * f.deadlocks_se[0]
    assert abs(f.trapped_mean[0] - f.trapped_cf[0]) < 4 * f.trapped_se[0]


def test_spin_phase_weights_follow_the_first_call(seed):
    """A busy CPU traps at the start of the window (the int3 phase: a sync still to come)."""
    from workbench.race.simulator import trap_phase_weights

    cfg = RaceConfig("seed", "spin", cpus=24, timing=FIXED)
    busy = trap_phase_weights(cfg, 1, 1.0)  # a call per ns: first call in the int3 phase
    assert busy["int3"] == pytest.approx(1.0) and busy["sync2"] == pytest.approx(0.0, abs=1e-12)
    schedule = seed.per_call("spin", "livepatched", "fentry")["deadlocks"]
    timed = seed.per_call("spin", "livepatched", "fentry", busy)["deadlocks"]
    assert 0 < schedule < 1 and timed == pytest.approx(1.0)
    # non-blocking strategies: weights are the phases' durations
    skip = trap_phase_weights(RaceConfig("seed", "skip", cpus=24, timing=FIXED), 7, 1.0)
    w, r = FIXED.write_ns, FIXED.ipi_base_ns
    assert skip == pytest.approx({"int3": 3 * w + r, "sync1": 7 * w, "tail": r, "sync2": 4 * w})
    assert sum(skip.values()) == pytest.approx(2 * 7 * w + 2 * r)


def test_spin_counts_n_minus_one_callers_and_the_patcher(seed):
    work = Workload(hot={"do_IRQ": 1000.0, "__migrate_task": 20.0}, tail_functions=0, tail_rate=0.0)
    n, t = 16, FIXED
    cf = closed_form(RaceConfig("seed", "spin", "per_site", n, work, t), seed)
    w = 2 * t.write_ns + 2 * t.ipi_base_ns
    callers = (n - 1) * (-math.expm1(-1000e-9 * w) - math.expm1(-20e-9 * w))
    patcher = -math.expm1(-1000e-9 * w)  # do_IRQ's own site window
    assert cf["trapped"] == pytest.approx(callers + patcher, rel=1e-9)
