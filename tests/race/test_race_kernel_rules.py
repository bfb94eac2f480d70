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

from workbench.race.outcomes import load_outcomes
from workbench.race.simulator import closed_form, RaceConfig, simulate
from workbench.race.workload import Workload
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
    from workbench.race.timeline import trap_phase_weights

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


def test_one_cpu_sends_no_ipi(seed):
    """run_sync() returns at once with one CPU online; on_each_cpu() sends nothing to itself."""
    for batching in ("batched", "per_site"):
        cf = closed_form(RaceConfig("seed", "skip", cpus=1, batching=batching), seed)
        assert cf["ipis"] == 0
        two = closed_form(RaceConfig("seed", "skip", cpus=2, batching=batching), seed)
        assert two["ipis"] > 0
    t = Timing()
    assert t.round_moments(1) == (0.0, 0.0) and t.round_moments(2)[0] > 0
    f = simulate(RaceConfig("seed", "skip", cpus=1), seed, trials=2000, seed=1)
    assert f.ipis_mean[0] == 0
    # the patch is its writes alone: the same as with free rounds
    cf = closed_form(RaceConfig("seed", "skip", cpus=1), seed)
    free = closed_form(RaceConfig("seed", "skip", cpus=1, timing=Timing(ipi_base_ns=0.0, irq_off_prob=0.0)), seed)
    assert cf["patch_ns"] == pytest.approx(free["patch_ns"], rel=1e-12)
    assert cf["window_ns"] == pytest.approx(free["window_ns"], rel=1e-12)


def test_spin_on_the_patching_cpu_deadlocks_in_every_phase(running):
    """The patching CPU writes the first bytes itself: an interrupt there that spins is never
    released, in the first-byte phase too (after sync2), unlike a trap on any other CPU."""
    from workbench.emulate.patching_cpu import patching_cpu_calls
    from workbench.race.timeline import patch_timeline

    calls = patching_cpu_calls("seed", "spin")
    step = calls.trap_phase.str.rsplit(":", n=1).str[-1]
    assert set(step) >= {"int3", "sync1", "tail", "sync2"}
    assert calls.deadlock.all() and not calls.crash.any()
    assert not patching_cpu_calls("seed", "skip").deadlock.any()
    # the simulator's patcher groups take those outcomes, whatever the phase weights
    # (was 0.948-0.9995: a trap in the first-byte phase counted as released)
    for batching in ("batched", "per_site"):
        for cpus in (2, 24, 256):
            stages = patch_timeline(RaceConfig("tracer_add_livepatch", "spin", batching, cpus=cpus), running)
            groups = [g for s in stages for g in s.patcher]
            assert groups and all(g.outcome["deadlocks"] == 1.0 for g in groups)


def test_simulate_cli_on_one_cpu_reports_no_ipi(capsys):
    import json

    from workbench.ui import cli
    assert cli.main(["simulate", "--scenario", "tracer_add_probe", "--cpus", "1,2", "--trials", "200",
                     "--json"]) == 0
    rows = {r["cpus"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[1]["ipis_mean"] == 0 and rows[1]["ipi_round_ns"] == 0  # was 9 IPIs and 5 us rounds
    assert rows[2]["ipis_mean"] == 9 and rows[2]["ipi_round_ns"] > 0
