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
