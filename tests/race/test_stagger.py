"""spin's re-traps under the batched protocol: closed form against a per-call simulation (issue 8, point 4)."""

import math

import numpy as np
import pytest

from workbench.base.errors import ConfigError
from workbench.race.stagger import one_trap_model, simulate_calls, spin_staggered

K, W_NS, R_NS = 20, 20_000.0, 50_000.0
E_NS = 2 * K * W_NS + 2 * R_NS  # every site's armed time


@pytest.mark.parametrize("rates", [np.full(K, 1000.0), 5000.0 / np.arange(1, K + 1),
                                   (5000.0 / np.arange(1, K + 1))[::-1]])
def test_closed_form_matches_a_per_call_simulation_when_saturated(rates):
    """8 CPUs, 20 sites, w = 20 us: every CPU traps, is released, and traps again."""
    cf = spin_staggered(rates, W_NS, E_NS)
    sim = simulate_calls(rates, W_NS, E_NS, cpus=8, trials=5000, seed=1)
    # 40,000 independent CPUs: the per-CPU means are normal to well within 4 standard errors
    assert abs(cf["traps"] - sim["traps"]) < 4 * sim["traps_se"]
    assert abs(cf["wait_ns"] - sim["wait_ns"]) < 4 * sim["wait_ns_se"]
    assert cf["first"] == pytest.approx(1.0, abs=1e-3) and cf["retraps"] > 0.9
    # the one-trap-per-batch model is far outside the simulation's interval
    old = one_trap_model(rates, W_NS, E_NS)
    assert (sim["traps"] - old["traps"]) / sim["traps_se"] > 50
    assert (sim["wait_ns"] - old["wait_ns"]) / sim["wait_ns_se"] > 50


def test_low_rates_keep_the_poisson_limit():
    rates = np.full(K, 1e-3)
    cf = spin_staggered(rates, W_NS, E_NS)
    assert cf["traps"] == pytest.approx(rates.sum() * 1e-9 * E_NS, rel=1e-4)  # 1 - O(L E)
    assert cf["retraps"] < 1e-9


def test_kinds_split_the_traps():
    rates = 5000.0 / np.arange(1, K + 1)
    cf = spin_staggered(rates, W_NS, E_NS, kinds=["lp"] * 2 + ["ord"] * (K - 2))
    assert sum(cf["by_kind"].values()) == pytest.approx(cf["traps"], rel=1e-12)


def test_same_seed_same_numbers_and_bad_input():
    a = simulate_calls(np.full(K, 500.0), W_NS, E_NS, cpus=2, trials=100, seed=4)
    assert a == simulate_calls(np.full(K, 500.0), W_NS, E_NS, cpus=2, trials=100, seed=4)
    with pytest.raises(ConfigError, match="rates_hz"):
        spin_staggered([-1.0], W_NS, E_NS)
    with pytest.raises(ConfigError, match="window_ns"):
        spin_staggered(np.full(K, 1.0), W_NS, 10.0)
    assert math.isfinite(spin_staggered(np.zeros(K), W_NS, E_NS)["wait_ns"])


def test_the_race_simulator_follows_the_per_call_simulation():
    """The simulator's batched spin (closed form and Monte Carlo) against simulate_calls, saturated."""
    from workbench.race.simulator import closed_form, RaceConfig, simulate
    from workbench.race.timeline import STAGGER_ORDER_SEED
    from workbench.race.outcomes import PerCallOutcomes
    from workbench.race.timing import Timing
    from workbench.race.workload import Workload

    t = Timing(write_ns=W_NS, ipi_base_ns=R_NS, irq_off_prob=0.0, handler_ns=0.0, handler_batch_ns=0.0)
    work = Workload(hot={"do_IRQ": 2000.0, "__migrate_task": 1500.0}, tail_functions=18, tail_rate=18_000.0,
                    zipf_s=1.0)
    cfg = RaceConfig("seed", "spin", "batched", 8, work, t, trampolines=False, patcher_calls=True)
    z = np.arange(1, 19, dtype=float) ** -1.0
    rates = np.array([2000.0, 1500.0] + list(z * 18_000.0 / z.sum()))
    rates = rates[np.random.default_rng(STAGGER_ORDER_SEED).permutation(rates.size)]
    sim = simulate_calls(rates, W_NS, E_NS, cpus=8, trials=5000, seed=2)
    cf = closed_form(cfg, None)
    assert cf["window_ns"] == pytest.approx(E_NS)
    assert abs(cf["trapped"] / 8 - sim["traps"]) < 4 * sim["traps_se"]
    assert abs(cf["stall_ns"] / 8 - sim["wait_ns"]) < 4 * sim["wait_ns_se"]
    assert cf["trapped"] / 8 > 1.5  # saturated: re-traps
    mc = simulate(cfg, PerCallOutcomes.empty("seed"), trials=20_000, seed=5)
    assert abs(mc.trapped_mean[0] - cf["trapped"]) < 4 * mc.trapped_se[0]
    assert abs(mc.stall_ns_mean[0] - cf["stall_ns"]) < 4 * mc.stall_ns_se[0] + 1e-9 * cf["stall_ns"]
