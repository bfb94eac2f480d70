"""Spin on one CPU: the closed form and the Monte Carlo see the same windows.

With one CPU online the only calls are the patching CPU's own interrupts
(do_IRQ), and there is no sync round (``run_sync()`` returns at once;
``on_each_cpu()`` sends nothing to its own CPU): each armed window is its
writes alone. Under spin the first interrupt trapped in a window deadlocks
the patch (docs/RACE.md "Deadlocks").
"""

import math

import pytest

from workbench.base.units import NS
from workbench.race.outcomes import load_outcomes
from workbench.race.simulator import RaceConfig, closed_form, simulate
from workbench.race.timeline import patch_timeline
from workbench.race.timing import Timing


@pytest.fixture(scope="module")
def probe():
    return load_outcomes("tracer_add_probe", arch="i386")


def test_one_cpu_round_quadrature_is_no_round():
    """The closed form's quadrature of a sync round agrees with Timing at 1 CPU: one node at 0 ns."""
    from workbench.race.spin import round_nodes, window_nodes

    t = Timing()
    values, weights = round_nodes(t, 1)
    assert t.round_moments(1) == (0.0, 0.0)
    assert values.tolist() == [0.0] and weights.tolist() == [1.0]
    W, w = window_nodes(t, 1, 1234.0)
    assert W.tolist() == [1234.0] and w.tolist() == [1.0]


def test_one_cpu_spin_closed_form_is_the_patching_cpu_writes_alone(probe):
    """Per armed window, P(the patching CPU's first do_IRQ falls in its writes), summed."""
    cfg = RaceConfig("tracer_add_probe", "spin", cpus=1, arch="i386")
    cf = closed_form(cfg, probe)
    expect = stall = 0.0
    for s in patch_timeline(cfg, probe):
        for g in s.patcher:
            p = -math.expm1(-NS * g.sites.total * s.d_write)
            expect += p
            stall += p * g.handler_ns
    assert expect > 0
    assert cf["trapped"] == pytest.approx(expect, rel=1e-12)
    assert cf["deadlocks"] == pytest.approx(expect, rel=1e-12)  # every trap there deadlocks
    assert cf["stall_ns"] == pytest.approx(stall, rel=1e-12)


@pytest.mark.parametrize("batching", ["batched", "per_site"])
def test_one_cpu_spin_monte_carlo_agrees_with_closed_form(probe, batching):
    """The figures' 1-CPU spin point: the means within 4 standard errors of the closed form."""
    cfg = RaceConfig("tracer_add_probe", "spin", batching, cpus=1, arch="i386")
    f = simulate(cfg, probe, trials=100_000, seed=7)
    for m in ("trapped", "deadlocks", "stall_ns"):
        se = f[f"{m}_se"][0]
        assert se > 0
        assert abs(f[f"{m}_mean"][0] - f[f"{m}_cf"][0]) < 4 * se, m
