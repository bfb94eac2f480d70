"""Tests of workbench.race.simulator: closed form against Monte Carlo, anchors, errors, CLI.

Most tests build small synthetic outcome tables (:func:`synthetic`) with
deliberately odd per-call means (fractions, values above 1). They test the
simulator's maths (counting, thinning, costs), not the outcome values; those
come from the emulator, and the tests marked ``real table`` use them through
``workbench.emulate.explore.load_outcome_table``.
"""

import json
import math
import re
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.scenario import scenario_names
from workbench.base.vocabulary import METRICS, STRATEGIES
from workbench.race.bristot import bristot_comparison
from workbench.race.outcomes import PerCallOutcomes, TRAP_SITES
from workbench.race.plan import derive_plan, PLANS
from workbench.race.simulator import closed_form, config_stream, RaceConfig, simulate, simulate_many
from workbench.race.workload import SITE_KINDS, Workload
from workbench.race.timing import BRISTOT, Timing


def synthetic(scenario, means=None):
    """An outcome table with one row per strategy x site kind x trap site.

    *means* maps a column to a per-call mean used everywhere; the default
    gives each strategy different fractional values to exercise the maths.
    """
    rows = []
    for i, strategy in enumerate(s for s in STRATEGIES if s != "stop_machine"):
        for j, kind in enumerate(SITE_KINDS):
            for k, site in enumerate(TRAP_SITES):
                base = means or {
                    "violation": (0.2 * i + 0.5 * j + 0.1 * k) % 1.3,
                    "dropped_tracer": (0.35 * i + 0.2 * k) % 1.1,
                    "dropped_livepatch": 1.5 if kind == "livepatched" else 0.0,
                    "spurious": 0.25 * (i % 2),
                    "crash": 0.05 * (strategy == "emulate_old"),
                }
                rows.append({"scenario": scenario, "entry": "v5.3", "strategy": strategy,
                             "site_kind": kind, "trap_site": site, "trapped_placements": 10,
                             "delay_insns": 3.0, **base})
    return PerCallOutcomes(pd.DataFrame(rows), scenario)


SMALL = Workload(hot={"do_IRQ": 3000.0, "__migrate_task": 400.0, "schedule": 8000.0},
                 tail_functions=300, tail_rate=5e4)
FIXED = Timing(irq_off_prob=0.0, ipi_base_ns=50_000.0)  # deterministic rounds


def _grid():
    """27 configurations across scenarios, strategies, batchings, CPUs, timings."""
    lognormalish = Timing(irq_off_prob=1.0, irq_off_scale_ns=20_000.0)
    bursty = Workload(hot=dict(SMALL.hot), tail_functions=300, tail_rate=5e4, dispersion=0.4)
    steep = Workload(hot=dict(SMALL.hot), tail_functions=2000, tail_rate=2e5, zipf_s=1.4)
    # about one call per CPU per window: spin's 1 - e^{-L W} far from both limits
    slow = Workload(hot={"do_IRQ": 300.0, "__migrate_task": 100.0, "schedule": 200.0},
                    tail_functions=40, tail_rate=500.0, dispersion=0.6)
    rows = [
        ("seed", "skip", "batched", 1, SMALL, Timing(), True),
        ("seed", "skip", "per_site", 2, SMALL, Timing(), True),
        ("seed", "spin", "batched", 24, SMALL, Timing(), True),
        ("seed", "spin", "per_site", 24, SMALL, Timing(), True),
        ("seed", "emulate_old", "batched", 64, bursty, Timing(), True),
        ("seed", "emulate_new", "per_site", 64, steep, lognormalish, True),
        ("seed", "stop_machine", None, 64, SMALL, Timing(), True),
        ("seed", "emulate_regs_caller", "batched", 4096, SMALL, Timing().scaled(0.5), True),
        ("seed", "skip", "batched", 24, SMALL, Timing(prepare_ns=3000.0), False),
        ("seed", "spin", "per_site", 8, bursty, FIXED, True),
        ("seed_reverse", "skip", "batched", 4, SMALL, Timing(), True),
        ("seed_reverse", "emulate_regs_caller", "per_site", 8, SMALL, Timing(), True),
        ("seed_reverse", "spin", "batched", 256, steep, lognormalish, True),
        ("seed_reverse", "emulate_old", "per_site", 1, SMALL, FIXED, True),
        ("seed_reverse", "stop_machine", None, 2, SMALL, FIXED, True),
        ("seed_reverse", "emulate_new", "batched", 32, bursty, Timing(), True),
        ("shared_regs_caller", "skip", "batched", 16, SMALL, Timing(), True),
        ("shared_regs_caller", "emulate_new", "per_site", 128, SMALL, Timing(), True),
        ("shared_regs_caller", "spin", "batched", 4096, SMALL, Timing(), True),
        ("shared_regs_caller", "spin", "per_site", 3, steep, Timing(), True),
        ("shared_regs_caller", "emulate_old", "batched", 64, bursty, lognormalish, True),
        ("shared_regs_caller", "emulate_regs_caller", "per_site", 512, SMALL, FIXED, True),
        ("shared_regs_caller", "stop_machine", None, 4096, steep, Timing(), True),
        ("shared_regs_caller", "skip", "per_site", 24, bursty, Timing(), False),
        ("seed", "spin", "batched", 24, slow, Timing(), True),
        ("seed", "spin", "per_site", 64, slow, Timing(), True),
        ("shared_regs_caller", "spin", "batched", 64, slow, lognormalish, True),
    ]
    return [RaceConfig(s, st, p, n, w, t, trampolines=tr) for s, st, p, n, w, t, tr in rows]


def _allowed_misses(n, p=0.01, alpha=0.001):
    """Smallest k with P(Binomial(n, p) > k) < alpha."""
    cdf = 0.0
    for k in range(n + 1):
        cdf += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
        if 1 - cdf < alpha:
            return k
    return n


def test_monte_carlo_agrees_with_closed_form_on_a_grid():
    """For >= 20 configs the closed form lies in the MC 99% interval of the mean.

    A miss has probability 1% per (config, metric) where the MC varies; the
    configs use independent streams, so per metric the number of misses is
    at most Binomial(n, 0.01)'s 99.9% quantile. Constant metrics must agree
    exactly.
    """
    configs = _grid()
    assert len(configs) >= 20
    outcomes = {s: synthetic(s) for s in scenario_names()}
    frame = simulate_many(configs, outcomes, trials=3000, seed=2024)
    z99 = 2.5758293035489
    for m in METRICS:
        mean, se, cf = frame[f"{m}_mean"], frame[f"{m}_se"], frame[f"{m}_cf"]
        const = se == 0
        assert np.allclose(mean[const], cf[const], rtol=1e-9, atol=1e-9), m
        varying = ~const
        misses = int((abs(mean[varying] - cf[varying]) > z99 * se[varying]).sum())
        assert misses <= _allowed_misses(int(varying.sum())), (m, misses, int(varying.sum()))
    # the grid exercises what it claims: traps, drops, spin stalls, crashes
    assert (frame.trapped_cf > 0).sum() >= 18
    assert (frame.crashes_cf > 0).any() and (frame.spurious_cf > 0).any()
    assert (frame.violations_se > 0).sum() >= 15


def test_poisson_baseline_by_hand():
    """Fixed windows: violations ~ Poisson(N * rate * W * m), W = 2 writes + 2 rounds.

    Per site the window runs from the int3 write to the first-byte write:
    sync R1, tail write w, sync R2, first-byte write w (R3 comes after).
    """
    t = FIXED
    outcomes = synthetic("seed", {"violation": 1.0, "dropped_tracer": 0.0, "dropped_livepatch": 0.0,
                                  "spurious": 0.0, "crash": 0.0})
    work = Workload(hot={"do_IRQ": 1000.0, "__migrate_task": 20.0}, tail_functions=0, tail_rate=0.0)
    for cpus in (1, 16, 256):
        cfg = RaceConfig("seed", "skip", "per_site", cpus, work, t)
        # one CPU online sends no IPI: no round (docs/KERNEL.md §5)
        w = 2 * t.write_ns + (2 * t.ipi_base_ns if cpus > 1 else 0.0)
        # the patching CPU is reached only by do_IRQ (interrupt context)
        expected_lp = ((cpus - 1) * 1020.0 + 1000.0) * w * 1e-9
        f = simulate(cfg, outcomes, trials=20_000, seed=cpus)
        assert f.window_ns_mean[0] == pytest.approx(w)
        assert closed_form(cfg, outcomes)["violations"] == pytest.approx(expected_lp, rel=1e-12)
        assert abs(f.violations_mean[0] - expected_lp) < 4 * f.violations_se[0]
        var = f.violations_se[0] ** 2 * 20_000  # Poisson: variance = mean
        # the sample variance of n Poisson(mu) draws has relative SE sqrt((1/mu + 2) / n)
        assert var == pytest.approx(expected_lp, rel=4 * math.sqrt((1 / expected_lp + 2) / 20_000))


def test_skip_violations_grow_with_cpus_and_window():
    outcomes = synthetic("seed", {"violation": 1.0, "dropped_tracer": 1.0, "dropped_livepatch": 1.0,
                                  "spurious": 0.0, "crash": 0.0})
    by_cpus = [closed_form(RaceConfig("seed", "skip", cpus=n, workload=SMALL), outcomes)["violations"]
               for n in (1, 2, 8, 64, 512, 4096)]
    assert all(b > a for a, b in pairwise(by_cpus))
    by_window = [closed_form(RaceConfig("seed", "skip", cpus=64, workload=SMALL,
                                        timing=Timing.for_round(r)), outcomes)["violations"]
                 for r in (1e5, 3e5, 1e6, 3e6)]
    assert all(b > a for a, b in pairwise(by_window))
    # linear in N at a fixed window (Poisson baseline): 64x CPUs, 64x violations
    a, b = (closed_form(RaceConfig("seed", "skip", cpus=n, workload=SMALL, timing=FIXED,
                                   patcher_calls=True), outcomes) for n in (8, 512))
    assert b["violations"] / a["violations"] == pytest.approx(64, rel=1e-12)


def test_overdispersed_calls_keep_the_mean_and_raise_the_variance():
    outcomes = synthetic("seed")
    d = 0.5
    frames = [simulate(RaceConfig("seed", "skip", "per_site", 32, Workload(
        hot={"do_IRQ": 2e4, "__migrate_task": 2e4}, tail_functions=0, tail_rate=0.0, dispersion=disp),
        FIXED), outcomes, trials=20_000, seed=3) for disp in (0.0, d)]
    mu = frames[0].trapped_cf[0]
    var0, var1 = (f.trapped_se[0] ** 2 * 20_000 for f in frames)
    assert frames[1].trapped_cf[0] == mu
    assert abs(frames[1].trapped_mean[0] - mu) < 4 * frames[1].trapped_se[0]
    # one burst factor per window and site group: var = mu + d * mu^2
    assert var0 == pytest.approx(mu, rel=0.06)
    assert var1 == pytest.approx(mu + d * mu ** 2, rel=0.1)


def test_spin_and_stop_machine_costs_by_hand():
    t, n = FIXED, 16
    outcomes = synthetic("seed")
    work = Workload(hot={"do_IRQ": 5000.0, "__migrate_task": 0.0}, tail_functions=0, tail_rate=0.0)
    cf = closed_form(RaceConfig("seed", "spin", "per_site", n, work, t, patcher_calls=True), outcomes)
    w = 2 * t.write_ns + 2 * t.ipi_base_ns  # spin waits until the first byte is written
    lam = 5000.0 * 1e-9
    # a spinning CPU makes no further calls: it traps at most once per window,
    # with probability 1 - e^{-L W}, and then waits W - T_first
    trapped = n * -math.expm1(-lam * w)
    assert cf["trapped"] == pytest.approx(trapped, rel=1e-12)
    wait = n * (w + math.expm1(-lam * w) / lam)
    assert cf["stall_ns"] == pytest.approx(trapped * t.handler_ns + wait, rel=1e-12)
    sm = closed_form(RaceConfig("seed", "stop_machine", cpus=n, workload=work, timing=t), outcomes)
    patch = t.stop_machine_ns + t.ipi_base_ns + 2 * t.write_ns  # 2 sites (the trampolines keep the list func)
    assert sm["trapped"] == 0 and sm["ipis"] == 1
    assert sm["patch_ns"] == pytest.approx(patch)
    assert sm["stall_ns"] == pytest.approx(n * patch)


def test_batched_window_by_hand():
    """K batched sites: every window is 2Kw + R1 + R2; patch_ns and IPIs as before.

    Site i's int3 is written at i*w, then R1, K tail writes, R2, and the
    first bytes in the same order, site i's at 2Kw + R1 + R2 + i*w: every
    site is armed for 2Kw + R1 + R2, no spread between sites. The patch
    still costs 3 writes per site and 3 rounds per breakpoint batch. Seed: two
    trampoline calls (one site each, nothing routed through them) and K = 7
    call sites (do_IRQ, __migrate_task, schedule and 4 tail functions).
    """
    t, n = FIXED, 8
    w, r = t.write_ns, t.ipi_base_ns
    work = Workload(hot={"do_IRQ": 1000.0, "__migrate_task": 20.0, "schedule": 5000.0},
                    tail_functions=4, tail_rate=4000.0)
    rate = 1000.0 + 20.0 + 5000.0 + 4000.0
    outcomes = synthetic("seed")
    k = 7
    win = 2 * k * w + 2 * r
    cf = closed_form(RaceConfig("seed", "spin", "batched", n, work, t, patcher_calls=True), outcomes)
    assert cf["window_ns"] == pytest.approx(win, rel=1e-12)
    # spin: site i is armed from i w to win + i w; a CPU released from site j traps
    # again on a later site still armed (workbench.race.stagger, issue 8)
    lam = rate * 1e-9
    one = _stagger_by_hand(work, w, win)
    assert cf["trapped"] == pytest.approx(n * one["traps"], rel=1e-9)
    assert cf["stall_ns"] == pytest.approx(cf["trapped"] * t.handler_batch_ns + n * one["wait_ns"], rel=1e-9)
    assert cf["trapped"] > -n * math.expm1(-lam * win) * 1.01  # re-traps: more than the one-trap model
    skip = closed_form(RaceConfig("seed", "skip", "batched", n, work, t, patcher_calls=True), outcomes)
    assert skip["trapped"] == pytest.approx(n * lam * win, rel=1e-12)  # others don't block
    # the kernel's patching CPU: only do_IRQ (interrupt context) reaches it
    kern = closed_form(RaceConfig("seed", "skip", "batched", n, work, t), outcomes)
    assert kern["trapped"] == pytest.approx(((n - 1) * rate + 1000.0) * 1e-9 * win, rel=1e-12)
    # seed: the DYNAMIC livepatch already put the list function in the trampolines
    assert cf["patch_ns"] == pytest.approx(3 * k * w + 3 * r, rel=1e-12)
    assert cf["ipis"] == 3
    per = closed_form(RaceConfig("seed", "spin", "per_site", n, work, t), outcomes)
    assert per["window_ns"] == pytest.approx(2 * w + 2 * r, rel=1e-12)
    assert per["patch_ns"] == pytest.approx(k * (3 * w + 3 * r), rel=1e-12)
    assert per["ipis"] == 3 * k
    # the Monte Carlo: fixed rounds make every window exactly the same
    f = simulate(RaceConfig("seed", "skip", "batched", n, work, t), outcomes, trials=500, seed=4)
    assert f.window_ns_se[0] == 0 and f.window_ns_mean[0] == pytest.approx(win, rel=1e-12)
    assert f.patch_ns_mean[0] == pytest.approx(cf["patch_ns"], rel=1e-12)


# -- spin: a spinning CPU makes no further calls -------------------------------

def _stagger_by_hand(work, w, win):
    """Per-CPU spin traps and wait over one batch of *work*'s sites (livepatched, then
    ordinary, in the simulator's fixed pseudo-random write order), by workbench.race.stagger."""
    from workbench.race.timeline import STAGGER_ORDER_SEED
    from workbench.race.stagger import spin_staggered

    hot = dict(work.hot)
    rates = [hot["do_IRQ"], hot["__migrate_task"]] + [r for k, r in work.hot if k not in ("do_IRQ", "__migrate_task")]
    if work.tail_functions:
        z = np.arange(1, work.tail_functions + 1, dtype=float) ** -work.zipf_s
        rates += list(z * work.tail_rate / z.sum())
    order = np.random.default_rng(STAGGER_ORDER_SEED).permutation(len(rates))
    return spin_staggered(np.asarray(rates)[order], w, win)


NO_HANDLER = Timing(handler_ns=0.0, handler_batch_ns=0.0)  # stall = the waits alone


def _seven_sites(scale, dispersion=0.0):
    """K = 7 call sites, all among the EXACT_SITES (no lumped rest); rates x *scale*."""
    return Workload(hot={"do_IRQ": 1000.0 * scale, "__migrate_task": 20.0 * scale,
                         "schedule": 5000.0 * scale},
                    tail_functions=4, tail_rate=4000.0 * scale, dispersion=dispersion)


@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("cpus", [2, 24, 4096, 65536])
def test_round_quadrature_matches_the_round(p, cpus):
    """The closed form's quadrature of a sync round: atom, mean, variance, and the draws."""
    from workbench.race.spin import round_nodes
    t = Timing(irq_off_prob=p)
    values, weights = round_nodes(t, cpus)
    mu, var = t.round_moments(cpus)
    assert weights.sum() == pytest.approx(1.0, rel=1e-14)
    assert weights @ values == pytest.approx(mu, rel=1e-10)
    assert weights @ values ** 2 - mu ** 2 == pytest.approx(var, rel=1e-8)
    if p < 1:  # every other CPU had interrupts on: the round is exactly its base
        assert values[0] == t.ipi_base_ns
        assert weights[0] == pytest.approx((1 - p) ** (cpus - 1), rel=1e-12)
    # a nonlinear function against Timing.draw_rounds itself
    g = lambda r: np.exp(-(r - t.ipi_base_ns) / mu)  # noqa: E731
    draws = g(t.draw_rounds(np.random.default_rng(cpus), cpus, 400_000))
    assert abs(weights @ g(values) - draws.mean()) < 4.5 * draws.std() / math.sqrt(draws.size)


def test_spin_helpers_small_and_large_x():
    """p = 1 - e^-x; wait/W = 1 - (1-e^-x)/x; Var(W-T | T<W)/W^2; bursty forms by quadrature."""
    from workbench.race.spin import spin_p, spin_q, spin_v
    x = np.array([1e-9, 1e-4, 0.999e-3, 1.001e-3, 0.5, 3.0, 40.0, 1e5])
    reference = np.where(x < 1e-3, x - x * x / 2 + x ** 3 / 6 - x ** 4 / 24, 1 - np.exp(-x))
    assert np.allclose(spin_p(x), reference, rtol=1e-12, atol=0)
    exact = np.array([1 - (1 - math.exp(-v)) / v if v > 0.5 else
                      sum((-1) ** (k + 1) * v ** k / math.factorial(k + 1) for k in range(1, 16))
                      for v in x])
    assert np.allclose(spin_q(x), exact, rtol=1e-11, atol=0)
    # the truncated exponential's variance, by quadrature of its density
    nodes, gl = np.polynomial.legendre.leggauss(200)
    u = (nodes + 1) / 2
    for v in (1e-3, 0.009, 0.011, 0.7, 6.0, 80.0):
        dens = v * np.exp(-v * u) / -math.expm1(-v)
        m1, m2 = (gl / 2) @ (u * dens), (gl / 2) @ (u * u * dens)
        assert spin_v(np.array([v]))[0] == pytest.approx(m2 - m1 * m1, rel=1e-8)
    # bursty (Gamma(1/d, d) factor averaged out) against a quadrature over u
    for d in (1e-6, 0.4, 1.0, 3.0):
        for v in (1e-5, 2e-3, 0.3, 7.0, 500.0):
            integral = (gl / 2) @ np.exp(-np.log1p(d * v * u) / d)
            assert spin_q(np.array([v]), d)[0] == pytest.approx(1 - integral, rel=1e-9)
            limit = 1 - (1 + d * v) ** (-1 / d) if d > 0.1 else -math.expm1(-v)  # d -> 0: Poisson
            assert spin_p(np.array([v]), d)[0] == pytest.approx(limit, rel=1e-12 if d > 0.1 else 1e-4)


@pytest.mark.parametrize("batching", ["batched", "per_site"])
def test_spin_limits(batching):
    """L -> 0: the old N L E[W] and N L E[W^2]/2; L -> inf: N per window, N E[W] each."""
    t, n = NO_HANDLER, 64
    windows = 7 if batching == "per_site" else 1
    d_write = 2 * t.write_ns * (1 if batching == "per_site" else 7)
    mu, var = t.round_moments(n)
    ew = d_write + 2 * mu
    ew2 = 2 * var + ew * ew
    rate = (1000.0 + 20.0 + 5000.0 + 4000.0) * 1e-9  # per CPU and ns
    low = closed_form(RaceConfig("seed", "spin", batching, n, _seven_sites(1e-6), t, trampolines=False,
                                 patcher_calls=True), None)
    assert low["trapped"] == pytest.approx(n * rate * 1e-6 * ew, rel=1e-5)
    assert low["stall_ns"] == pytest.approx(n * rate * 1e-6 * ew2 / 2, rel=1e-5)
    high = closed_form(RaceConfig("seed", "spin", batching, n, _seven_sites(1e6), t, trampolines=False,
                                  patcher_calls=True), None)
    if batching == "per_site":
        assert high["trapped"] == pytest.approx(n * windows, rel=1e-12)
        assert high["stall_ns"] == pytest.approx(n * windows * ew, rel=1e-3)
        assert high["stall_ns"] < n * windows * ew
    else:  # staggered windows: released from site j, a CPU traps again on a later site
        assert n < high["trapped"] <= n * 7
        assert high["stall_ns"] < n * (ew + 6 * t.write_ns)
    # the strategies that do not block keep N L E[W]
    skip = closed_form(RaceConfig("seed", "skip", batching, n, _seven_sites(1e6), t, trampolines=False,
                                  patcher_calls=True), None)
    assert skip["trapped"] == pytest.approx(n * rate * 1e6 * ew, rel=1e-12)


@pytest.mark.parametrize("batching", ["batched", "per_site"])
@pytest.mark.parametrize("scale,dispersion", [(1e-2, 0.0), (1.0, 0.0), (30.0, 0.7), (1e4, 0.0), (1e4, 2.0)])
def test_spin_never_waits_longer_than_the_windows(batching, scale, dispersion):
    """Every trial: waits <= N x the windows, trapped <= N per window; MC mean = closed form."""
    from workbench.race.simulator import draw_chunk
    from workbench.race.timeline import patch_timeline
    n, k = 32, 7
    cfg = RaceConfig("seed", "spin", batching, n, _seven_sites(scale, dispersion), NO_HANDLER,
                     trampolines=False)
    res = draw_chunk(cfg, patch_timeline(cfg, None), np.random.default_rng(int(scale) + 7), 20_000)
    windows = k if batching == "per_site" else 1
    total_window = res["window_ns"] * windows  # per site: the mean window x K = their sum
    if batching == "batched":  # staggered: a CPU may spin until the last first-byte write
        total_window = total_window + (k - 1) * cfg.timing.write_ns
    assert (res["stall_ns"] >= 0).all()
    assert (res["stall_ns"] <= n * total_window * (1 + 1e-12)).all()
    # per site: at most one trap per CPU and window; batched: at most one per CPU and site
    assert (res["trapped"] <= n * k).all()
    cf = closed_form(cfg, None)
    for m in ("trapped", "stall_ns"):
        se = res[m].std() / math.sqrt(res[m].size)
        assert abs(res[m].mean() - cf[m]) <= 4.5 * se + 1e-9 * cf[m], m


@pytest.mark.parametrize("cpus", [24, 256, 4096])
@pytest.mark.parametrize("batching", ["batched", "per_site"])
def test_spin_default_workload_is_physical(cpus, batching):
    """Default workload: spin's stall stays below CPUs x patch time; batched, every CPU traps once per window."""
    cf = closed_form(RaceConfig("seed", "spin", batching, cpus), None)
    assert cf["stall_ns"] < cpus * cf["patch_ns"]
    if batching == "batched":  # seed patches only the sites: one staggered batch
        k = 40_003
        assert cpus < cf["trapped"] < cpus * 20  # re-traps: a few per CPU (issue 8)
        span = cf["window_ns"] + (k - 1) * Timing().write_ns
        assert cf["stall_ns"] < cpus * span + cf["trapped"] * Timing().handler_batch_ns
    # fewer traps than N L E[W] (a spinning CPU calls nothing else): the busy
    # sites' windows saturate at one trap per CPU
    skip = closed_form(RaceConfig("seed", "skip", batching, cpus), None)
    assert cf["trapped"] < skip["trapped"] * (0.8 if batching == "per_site" else 1e-3)


@pytest.mark.parametrize("d,rates", [(0.4, (3000.0, 60000.0)), (1.0, (50.0, 400.0)), (3.0, (1e6, 2e3))])
def test_spin_shared_window_with_bursty_groups(d, rates):
    """Two bursty groups in one window (numeric in t) against sampling their burst factors."""
    from workbench.race.spin import spin_shared, window_nodes
    t, n = Timing(), 24
    d_write = 100 * t.write_ns
    traps, wait = spin_shared(t, n, d_write, rates, d)
    W, w = window_nodes(t, n, d_write)
    lam = np.array(rates) * 1e-9
    phi = np.prod([(1 + d * l * W) ** (-1 / d) for l in lam], axis=0)
    assert sum(traps) == pytest.approx(w @ (1 - phi), rel=1e-12)  # P(trap at all)
    rng = np.random.default_rng(5)
    m = 400_000
    gains = rng.gamma(1 / d, d, (m, 2))
    ww = W[rng.choice(W.size, m, p=w / w.sum())]
    total = gains @ lam
    p = -np.expm1(-total * ww)
    first = gains[:, 0] * lam[0] / total * p
    waits = ww - p / total
    for mine, sample in ((traps[0], first), (wait, waits)):
        assert abs(mine - sample.mean()) < 4.5 * sample.std() / math.sqrt(m)


@pytest.mark.parametrize("work", [Workload(), Workload(tail_functions=3000, zipf_s=1.4, dispersion=0.5)])
def test_spin_per_site_rest_sums_match_site_by_site(work):
    """The lumped rest (table in ln rate) equals the sum site by site; same sites as site_summary."""
    from workbench.race.spin import rest_rates, rest_sums, site_terms, window_nodes
    from workbench.race.workload import site_summary
    rest = rest_rates(work, "ordinary")
    summary = site_summary(work)["ordinary"]
    assert rest.size == summary.count - summary.top.size
    assert rest.sum() == pytest.approx(summary.rest_total, rel=1e-12)
    assert (rest ** 2).sum() == pytest.approx(summary.rest_sumsq, rel=1e-9)
    W, w = window_nodes(Timing(), 64, 2 * Timing().write_ns)
    traps, wait, var = rest_sums(rest, W, w, work.dispersion)
    exact = site_terms(rest * 1e-9, W, w, work.dispersion)
    assert traps == pytest.approx(exact[0].sum(), rel=1e-7)
    assert wait == pytest.approx(exact[1].sum(), rel=1e-7)
    assert var == pytest.approx((exact[2] - exact[0] ** 2).sum(), rel=1e-5)
    # most of the rest is far from the low-rate limit: p_i ~ l_i W_i would overcount
    assert traps < 0.9 * summary.rest_total * 1e-9 * w @ W


@pytest.mark.parametrize("batching", ["batched", "per_site"])
def test_window_rounds_are_each_batchs_first_two(batching):
    """Monte Carlo: a window's two rounds are drawn with its run's three.

    Per trial, patch - (window of one site x runs) is the writes outside the
    windows plus the third rounds only, so it is never below them and its
    variance is that of the third rounds (independent draws would add the
    window rounds' variance twice over).
    """
    from workbench.race.simulator import draw_chunk
    from workbench.race.timeline import patch_timeline
    t = Timing()  # random rounds
    n, k = 24, 6
    work = Workload(hot={"do_IRQ": 1e3, "__migrate_task": 1e3}, tail_functions=k - 2, tail_rate=1e4)
    cfg = RaceConfig("seed", "skip", batching, n, work, t, trampolines=False)
    res = draw_chunk(cfg, patch_timeline(cfg, None), np.random.default_rng(3), 40_000)
    runs = k if batching == "per_site" else 1
    outside = res["patch_ns"] - runs * res["window_ns"]  # = k w + sum of the runs' third rounds
    mu, var = t.round_moments(n)
    assert outside.min() >= k * t.write_ns + runs * t.ipi_base_ns - 1e-6
    assert outside.mean() == pytest.approx(k * t.write_ns + runs * mu, rel=0.02)
    assert outside.var() == pytest.approx(runs * var, rel=0.05)


def test_bristot_anchor():
    """24 CPUs, 56 sites: IPIs 168 vs 3; batched update is ~40x shorter.

    Int3 hits: a window holds 2 of its breakpoint batch's 3 writes per site and
    its first 2 of 3 rounds, so per-site windows sum to 2/3 of the 57 ms
    update and each of the 56 overlapping batched windows is 2/3 of the
    1.4 ms: the batched / per-site hit ratio is (56 w + R) / (w + R) =
    56 * 1.4 / 57 = 1.375 (prepare_ns = 0). Bristot measured 0.9 (reported
    beside the prediction, not reproduced).
    """
    table = bristot_comparison()
    print("\n" + table.to_string(index=False))
    row = table.set_index("quantity")
    assert tuple(row.loc["IPI rounds per update", ["model_per_site", "model_batched"]]) == (168, 3)
    upd = row.loc["update time (ms)"]
    assert upd.model_per_site == pytest.approx(57.0, rel=1e-9)
    assert upd.model_batched == pytest.approx(1.4, rel=1e-9)
    assert upd.model_ratio == pytest.approx(1.4 / 57, rel=1e-9)
    hits = row.loc["int3 hits per update (relative)"]
    assert hits.model_ratio == pytest.approx(BRISTOT.sites * 1.4 / 57, rel=1e-9)
    assert hits.measured_ratio == 0.9
    # prepare time (outside every window) pulls it towards 1, never below
    w, r = Timing().write_ns, Timing().round_moments(24)[0]
    p = 3 * w / 2  # same update times: each site's 3 writes shrink to 1.5 w
    alt = bristot_comparison(Timing(prepare_ns=p, write_ns=w / 2)).set_index("quantity")
    assert alt.loc["update time (ms)", "model_batched"] == pytest.approx(1.4, rel=1e-9)
    ratio = alt.loc["int3 hits per update (relative)", "model_ratio"]
    assert ratio == pytest.approx((56 * w / 2 + r) / (w / 2 + r), rel=1e-9)
    assert 1.0 < ratio < BRISTOT.sites * 1.4 / 57
    # the same through the Monte Carlo
    work = Workload(hot={"do_IRQ": 1e3, "__migrate_task": 1e3}, tail_functions=54, tail_rate=5e4)
    mc = {p: simulate(RaceConfig("seed", "skip", p, 24, work, trampolines=False),
                      PerCallOutcomes.empty("seed"), trials=4000, seed=11) for p in ("per_site", "batched")}
    assert (mc["per_site"].ipis_mean[0], mc["batched"].ipis_mean[0]) == (168, 3)
    assert mc["per_site"].n_sites[0] == 56
    assert mc["batched"].patch_ns_hi[0] < mc["per_site"].patch_ns_lo[0]
    for f in mc.values():
        assert abs(f.patch_ns_mean[0] - f.patch_ns_cf[0]) < 4 * f.patch_ns_se[0]


def test_tens_of_thousands_of_sites_are_cheap():
    import time
    outcomes = synthetic("seed")
    cfg = RaceConfig("seed", "skip", "per_site", 4096, Workload(tail_functions=200_000))
    start = time.perf_counter()
    f = simulate(cfg, outcomes, trials=10_000, seed=1)
    assert time.perf_counter() - start < 5.0  # typically ~0.05 s
    assert f.n_sites[0] == 200_003 and f.ipis_mean[0] == 3 * 200_003  # seed: no trampoline update


def test_no_changed_sites_means_no_site_batch():
    work = Workload(hot={"do_IRQ": 1e3, "__migrate_task": 1e3}, tail_functions=0, tail_rate=0.0)
    for batching in ("batched", "per_site"):
        cfg = RaceConfig("shared_regs_caller", "skip", batching, 8, work)
        f = simulate(cfg, synthetic("shared_regs_caller"), trials=200, seed=0)
        assert f.n_sites[0] == 0 and f.ipis_cf[0] == 6 and f.window_ns_cf[0] == 0
        assert f.trapped_cf[0] > 0  # the livepatched calls still trap at ftrace_regs_call


def test_same_seed_same_numbers():
    outcomes = synthetic("shared_regs_caller")
    cfg = RaceConfig("shared_regs_caller", "spin", "per_site", 48, SMALL)
    a = simulate(cfg, outcomes, trials=5000, seed=7)
    b = simulate(cfg, outcomes, trials=5000, seed=7)
    c = simulate(cfg, outcomes, trials=5000, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert a.trapped_mean[0] != c.trapped_mean[0]
    # a configuration's stream is keyed by the configuration, not by its place in the list
    other = RaceConfig("shared_regs_caller", "spin", "per_site", 24, SMALL)
    many = simulate_many([other, cfg, cfg], outcomes, trials=5000, seed=7)
    pd.testing.assert_frame_equal(many.iloc[[1]].reset_index(drop=True), many.iloc[[2]].reset_index(drop=True))
    alone = simulate(cfg, outcomes, trials=5000, seed=7, stream=config_stream(cfg))
    pd.testing.assert_frame_equal(many.iloc[[1]].reset_index(drop=True), alone)
    assert many.trapped_mean[1] != a.trapped_mean[0]  # stream 0 is another stream


def test_frame_is_tidy():
    f = simulate(RaceConfig(workload=SMALL), synthetic("seed"), trials=100, seed=0)
    for m in METRICS:
        for suffix in ("mean", "se", "lo", "hi", "cf"):
            assert f"{m}_{suffix}" in f.columns
    for col in ("scenario", "strategy", "batching", "cpus", "n_sites", "ipi_round_ns", "trials", "seed"):
        assert col in f.columns
    assert len(f) == 1 and f.outcome_note[0] == ""


def test_missing_outcome_rows_count_as_zero_with_a_note():
    table = synthetic("seed").__dict__  # drop the skip rows
    partial = PerCallOutcomes.empty("seed")
    partial._means = {k: v for k, v in table["_means"].items() if k[0] != "skip"}
    f = simulate(RaceConfig(workload=SMALL), partial, trials=100, seed=0)
    assert f.violations_cf[0] == 0 and f.trapped_cf[0] > 0
    assert "skip/livepatched/fentry" in f.outcome_note[0]


@pytest.mark.parametrize("kw,name", [
    ({"cpus": 0}, "cpus"),
    ({"cpus": 1.5}, "cpus"),
    ({"strategy": "retry"}, "strategy"),
    ({"scenario": "nope"}, "scenario"),
    ({"batching": "sometimes"}, "batching"),
    ({"strategy": "stop_machine", "batching": "batched"}, "batching"),
    ({"strategy": "skip", "batching": "stop_machine"}, "batching"),
    ({"horizon_ns": 1e6}, "horizon_ns"),
    ({"workload": Workload(hot={"schedule": 1.0})}, "rate"),
])
def test_bad_config_names_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=f"^{name}: ") as info:
        RaceConfig(**kw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kw,name", [
    ({"hot": {"do_IRQ": -5.0}}, r"rate\[do_IRQ\]"),
    ({"tail_rate": -1.0}, "tail_rate"),
    ({"tail_functions": -3}, "tail_functions"),
    ({"dispersion": -0.1}, "dispersion"),
    ({"tail_functions": 0}, "tail_rate"),
])
def test_bad_workload_names_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=f"^{name}: "):
        Workload(**kw)


def test_bad_simulate_arguments():
    cfg = RaceConfig(workload=SMALL)
    with pytest.raises(ConfigError, match="^trials: "):
        simulate(cfg, synthetic("seed"), trials=1)
    with pytest.raises(ConfigError, match="^outcomes: "):
        simulate(cfg, synthetic("seed_reverse"), trials=10)


def test_plans_follow_the_kernel_order():
    """docs/KERNEL.md §11-12: trampoline calls first (routing decides what they trap), then sites."""
    from workbench.race.plan import Stage
    # the livepatch is DYNAMIC: the trampolines hold ftrace_ops_list_func before and
    # after the tracer comes or goes (ftrace_ops_get_list_func): no trampoline update
    LP, IRQ, MIG = ("do_IRQ", "__migrate_task"), ("do_IRQ",), ("__migrate_task",)
    assert PLANS["seed"] == (Stage("sites", ("livepatched", "ordinary"), LP),)
    assert PLANS["seed_reverse"] == (Stage("sites", ("livepatched", "ordinary"), LP),)
    # a static probe reaches its handler through ftrace_regs_call
    assert PLANS["shared_regs_caller"] == (Stage("ftrace_call"), Stage("ftrace_regs_call", ("livepatched",), LP),
                                           Stage("sites", ("ordinary",)))
    # one update per livepatch ops (docs/KERNEL.md §2a): do_IRQ's site alone (the trace
    # function stays the list function), then update_ftrace_func() runs on both calls even
    # though they keep the list function, __migrate_task's site, publish, and the final
    # function (function_trace_call)
    assert PLANS["tracer_remove_livepatch"] == (
        Stage("sites", ("livepatched",), IRQ),
        Stage("ftrace_call", ("livepatched", "ordinary"), IRQ), Stage("ftrace_regs_call", ("livepatched",), MIG),
        Stage("sites", ("livepatched",), MIG), Stage("publish"),
        Stage("ftrace_call", ("livepatched", "ordinary"), LP), Stage("ftrace_regs_call"))
    assert PLANS["tracer_add_livepatch"] == (
        Stage("ftrace_call", ("livepatched", "ordinary"), LP), Stage("ftrace_regs_call"),
        Stage("sites", ("livepatched",), IRQ), Stage("sites", ("livepatched",), MIG))
    assert derive_plan("seed") is not PLANS["seed"] and derive_plan("seed") == PLANS["seed"]


# -- command line -------------------------------------------------------------

def _cli(argv, capsys):
    from workbench.ui import cli
    status = cli.main(["simulate", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("argv,name", [
    (["--cpus", "0"], "cpus"),
    (["--strategy", "retry"], "strategy"),
    (["--hot", "do_IRQ=-5,__migrate_task=20"], r"hot\[do_IRQ\]"),
    (["--trampolines", "maybe"], "trampolines"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, name, capsys):
    status, out, err = _cli(argv + ["--trials", "10"], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and re.search(name, err)


def test_cli_json_is_reproducible(capsys):
    argv = ["--strategy", "stop_machine", "--cpus", "1,64", "--trials", "500", "--seed", "1", "--json"]
    s1, out1, _ = _cli(argv, capsys)
    s2, out2, _ = _cli(argv, capsys)
    assert s1 == s2 == 0 and out1 == out2
    records = json.loads(out1)
    assert [r["cpus"] for r in records] == [1, 64]
    assert records[1]["stall_ns_cf"] == pytest.approx(64 * records[1]["patch_ns_cf"])


def test_cli_table_and_bristot(capsys):
    status, out, _ = _cli(["--strategy", "stop_machine", "--trials", "100"], capsys)
    assert status == 0 and "stall_ns" in out and "closed form" in out
    status, out, _ = _cli(["--bristot"], capsys)
    assert status == 0 and "IPI rounds per update" in out and "0.9" in out


# -- with the emulator's outcome table -------------------------------------------

def _real_loader():
    from workbench.race.outcomes import load_outcomes
    return load_outcomes


@pytest.mark.parametrize("strategy", ["emulate_regs_caller", "emulate_new"])
def test_real_table_emulating_strategies_drop_nothing_in_seed(strategy):
    """real table: nothing dropped, violated or crashed at any CPU count."""
    outcomes = _real_loader()("seed")
    configs = [RaceConfig("seed", strategy, batching, n) for n in (1, 2, 24, 64, 512, 4096)
               for batching in ("batched", "per_site")]
    frame = simulate_many(configs, outcomes, trials=2000, seed=5)
    assert (frame.trapped_mean > 0).all()
    for m in ("violations", "dropped_tracer", "dropped_livepatch", "crashes"):
        assert (frame[f"{m}_mean"] == 0).all() and (frame[f"{m}_cf"] == 0).all(), m


def test_real_table_skip_violations_follow_the_poisson_baseline():
    """real table: skip violates livepatch; violations grow with N and window."""
    outcomes = _real_loader()("seed")
    m = outcomes.per_call("skip", "livepatched", "fentry")["violations"]
    assert m > 0
    work = Workload()
    lp_rate = sum(r for name, r in work.hot if name in ("do_IRQ", "__migrate_task"))
    prev = 0.0
    for n in (1, 8, 64, 512):
        cfg = RaceConfig("seed", "skip", "per_site", n, work, FIXED)
        f = simulate(cfg, outcomes, trials=4000, seed=n)
        w = 2 * FIXED.write_ns + (2 * FIXED.ipi_base_ns if n > 1 else 0.0)  # 1 CPU: no round
        # the patching CPU: only do_IRQ (interrupt context) reaches it
        lp_violations = ((n - 1) * lp_rate + dict(work.hot)["do_IRQ"]) * w * 1e-9 * m
        ordinary = f.violations_cf[0] - lp_violations  # ordinary sites' share, if any
        assert ordinary >= -1e-9
        assert abs(f.violations_mean[0] - f.violations_cf[0]) < 4.5 * f.violations_se[0] + 1e-12
        assert f.violations_cf[0] > prev
        prev = f.violations_cf[0]
