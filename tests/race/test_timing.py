"""Tests of workbench.race.timing: anchored defaults, round-latency maths, draws, errors."""

import math
from itertools import pairwise

import numpy as np
import pytest

from workbench.base.errors import ConfigError
from workbench.race.timing import (BRISTOT, EXACT_ROUNDS, Timing, derive_write_and_round,
                              tail_max_moments)


def test_derived_defaults_reproduce_bristot_update_times():
    write, rnd = derive_write_and_round()
    k = BRISTOT.sites
    assert k * (3 * write + 3 * rnd) == pytest.approx(BRISTOT.update_per_site_ns, rel=1e-12)
    assert 3 * k * write + 3 * rnd == pytest.approx(BRISTOT.update_batched_ns, rel=1e-12)
    # docs/KERNEL.md §13's derived 57 ms / 168 = 0.34 ms is the same figure without writes
    assert rnd == pytest.approx(57e6 / 168, rel=0.01)
    assert 2_000 < write < 2_600
    t = Timing()
    assert t.write_ns == write
    assert t.round_moments(BRISTOT.cpus)[0] == pytest.approx(rnd, rel=1e-9)
    assert (t.handler_ns, t.handler_batch_ns) == (45.0, 180.0)


@pytest.mark.parametrize("n", [1, 2, 23, 100, 4095])
def test_exponential_max_moments_are_harmonic(n):
    """p = 1: max of n Exp(1) has mean H_n and variance sum 1/k^2."""
    m1, m2 = tail_max_moments(n, 1.0)
    h = sum(1 / k for k in range(1, n + 1))
    h2 = sum(1 / k ** 2 for k in range(1, n + 1))
    assert m1 == pytest.approx(h, rel=1e-12)
    assert m2 - m1 * m1 == pytest.approx(h2, rel=1e-8)


def test_max_moments_edge_cases():
    assert tail_max_moments(0, 0.5) == (0.0, 0.0)
    assert tail_max_moments(10, 0.0) == (0.0, 0.0)
    # one CPU with a tail: mean p, second moment 2p (mixture of 0 and Exp(1))
    m1, m2 = tail_max_moments(1, 0.3)
    assert (m1, m2) == (pytest.approx(0.3), pytest.approx(0.6, rel=1e-8))


@pytest.mark.parametrize("cpus,prob", [(1, 0.1), (2, 0.1), (24, 0.1), (24, 1.0), (4096, 0.1), (4096, 0.01)])
def test_round_draws_match_moments(cpus, prob):
    t = Timing.for_round(300_000.0, irq_off_prob=prob)
    mean, var = t.round_moments(cpus)
    x = t.draw_rounds(np.random.default_rng(5), cpus, 400_000)
    if cpus == 1:  # one CPU online: run_sync() returns at once, no round (docs/KERNEL.md §5)
        assert (x == 0).all() and (mean, var) == (0.0, 0.0)
        return
    assert x.min() >= t.ipi_base_ns
    se = math.sqrt(var / x.size)
    assert abs(x.mean() - mean) <= 4.5 * se + 1e-9
    if var:
        assert x.var() == pytest.approx(var, rel=0.03)


def test_round_latency_grows_with_cpus():
    t = Timing()
    means = [t.round_moments(n)[0] for n in (1, 2, 8, 24, 64, 512, 4096)]
    assert means[0] == 0.0  # one CPU: no IPI, no round
    assert means[1] > t.ipi_base_ns
    assert all(b > a for a, b in pairwise(means))


@pytest.mark.parametrize("count", [1, 3, EXACT_ROUNDS, EXACT_ROUNDS + 1, 5000])
def test_round_sums_keep_mean_and_variance(count):
    t = Timing()
    mean, var = t.round_moments(64)
    s = t.draw_round_sum(np.random.default_rng(9), 64, count, 200_000)
    assert s.mean() == pytest.approx(count * mean, rel=4.5 * math.sqrt(count * var / s.size) / (count * mean))
    assert s.var() == pytest.approx(count * var, rel=0.03)


def test_same_seed_same_draws():
    t = Timing()
    a = t.draw_rounds(np.random.default_rng(1), 64, 1000)
    b = t.draw_rounds(np.random.default_rng(1), 64, 1000)
    assert np.array_equal(a, b)


def test_for_round_and_scaled():
    t = Timing.for_round(1e6, cpus=64)
    assert t.round_moments(64)[0] == pytest.approx(1e6)
    s = Timing().scaled(2.0)
    assert s.round_moments(24)[0] == pytest.approx(2 * Timing().round_moments(24)[0])
    assert s.write_ns == 2 * Timing().write_ns
    fixed = Timing(irq_off_prob=0.0, ipi_base_ns=7_000.0)
    assert fixed.round_moments(4096) == (7_000.0, 0.0)


@pytest.mark.parametrize("kw,name", [
    ({"write_ns": -1}, "write_ns"),
    ({"irq_off_prob": 1.5}, "irq_off_prob"),
    ({"handler_ns": float("inf")}, "handler_ns"),
    ({"ipi_base_ns": "fast"}, "ipi_base_ns"),
])
def test_bad_timing_names_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=f"^{name}: "):
        Timing(**kw)


def test_for_round_refuses_a_non_positive_round():
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ConfigError, match="^sync_round_ns: "):
            Timing.for_round(bad)
