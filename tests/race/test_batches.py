"""Batches as the kernel cuts them: ``RaceConfig.batch_max`` (sites per breakpoint batch).

From v5.6 ftrace queues each record with ``text_poke_queue()`` and the
queue is flushed as one ``text_poke_bp_batch()`` whenever it holds
``TP_VEC_MAX`` entries (256 on x86 from v5.6), so ~40,000 sites are patched
in ceil(sites / 256) batches, each with its own three sync rounds and its
own int3 window. ``batch_max=None`` is the pre-v5.6 single batch.

These tests were written before the parameter existed: on the old code every
``RaceConfig(..., batch_max=...)`` raises TypeError, so each test below that
passes a ``batch_max`` fails there by construction.
"""

import math
from itertools import pairwise

import pytest

from workbench.base.errors import ConfigError
from workbench.race.outcomes import PerCallOutcomes
from workbench.race.plan import TP_VEC_MAX
from workbench.race.simulator import closed_form, RaceConfig, simulate
from workbench.race.timeline import patch_timeline
from workbench.race.workload import Workload

# a small workload: few enough sites that batch_max=1 runs quickly in the Monte Carlo
SMALL = Workload(hot={"do_IRQ": 3000.0, "__migrate_task": 400.0, "schedule": 8000.0},
                 tail_functions=300, tail_rate=5e4)
EMPTY = PerCallOutcomes.empty("seed")
SMALL_COUNT = {"livepatched": 2, "ordinary": 301}  # do_IRQ, __migrate_task; schedule and the 300-function tail


def EMPTY_OF(scenario):
    return PerCallOutcomes.empty(scenario)


def cfg(**kw):
    kw.setdefault("workload", SMALL)
    return RaceConfig("seed", **kw)


def n_sites(c):
    return sum(s.sites for s in patch_timeline(c, None) if s.what in ("batched", "per_site"))


def test_tp_vec_max_is_derived_from_the_v56_struct():
    # struct text_poke_loc (v5.6): s32 rel_addr; s32 rel32; u8 opcode; u8 text[5]
    # -> 4 + 4 + 1 + 5 = 14 bytes, padded to s32 alignment: 16; PAGE_SIZE / 16
    assert TP_VEC_MAX == 4096 // 16 == 256


@pytest.mark.parametrize("strategy", ["skip", "emulate_new", "spin"])
def test_none_is_bit_identical_to_todays_batched(strategy):
    a = cfg(strategy=strategy)
    b = cfg(strategy=strategy, batch_max=None)
    assert closed_form(a, EMPTY) == closed_form(b, EMPTY)
    ra = simulate(a, EMPTY, trials=400, seed=3).drop(columns=["batch_max"], errors="ignore")
    rb = simulate(b, EMPTY, trials=400, seed=3).drop(columns=["batch_max"], errors="ignore")
    assert ra.equals(rb)


@pytest.mark.parametrize("scenario", ["seed", "shared_regs_caller", "tracer_add_livepatch"])
@pytest.mark.parametrize("strategy", ["skip", "emulate_new", "spin"])
def test_batch_max_1_equals_per_site_closed_form(strategy, scenario):
    # spin: a batch of one site is the one-trap model of its own window, as per_site
    # (per_site's rest of the sites goes through an interpolated table: 1e-6)
    out = PerCallOutcomes.empty(scenario)
    for cpus in (24, 256):
        a = closed_form(RaceConfig(scenario, strategy, "per_site", cpus=cpus, workload=SMALL), out)
        b = closed_form(RaceConfig(scenario, strategy, cpus=cpus, workload=SMALL, batch_max=1), out)
        for m in ("trapped", "patch_ns", "ipis", "stall_ns", "window_ns", "deadlocks"):
            assert b[m] == pytest.approx(a[m], rel=1e-6 if strategy == "spin" else 1e-9), (m, cpus)


def test_batch_max_1_equals_per_site_monte_carlo():
    # the draws do not line up (per_site aggregates the rest of the sites), so
    # the two means agree within 4 combined standard errors
    a = simulate(cfg(strategy="skip", batching="per_site", cpus=24), EMPTY, trials=3000, seed=5).iloc[0]
    b = simulate(cfg(strategy="skip", batch_max=1, cpus=24), EMPTY, trials=3000, seed=5).iloc[0]
    for m in ("trapped", "patch_ns"):
        se = math.hypot(a[f"{m}_se"], b[f"{m}_se"])
        assert abs(a[f"{m}_mean"] - b[f"{m}_mean"]) <= 4 * se + 1e-9 * abs(a[f"{m}_mean"]), m
    assert a["ipis_mean"] == b["ipis_mean"]


@pytest.mark.parametrize("scenario", ["seed", "shared_regs_caller", "tracer_remove_livepatch"])
@pytest.mark.parametrize("batch_max", [None, 1, 2, 7, 64, 256, 10**6])
def test_ipi_rounds(scenario, batch_max):
    from workbench.race.plan import PLANS
    c = RaceConfig(scenario, workload=SMALL, batch_max=batch_max)
    sites = [s for s in patch_timeline(c, None) if s.what in ("batched", "per_site")]
    steps = [st for st in PLANS[scenario] if st.target == "sites"]
    # a step's live-patched sites are its own functions' (one update per livepatch ops)
    k = [sum(SMALL_COUNT[kind] for kind in st.kinds if kind != "livepatched")
         + (len(st.functions) if "livepatched" in st.kinds else 0) for st in steps]
    assert sum(s.sites for s in sites) == sum(k)
    batches = sum(1 if batch_max is None else math.ceil(x / batch_max) for x in k)
    tramps = sum(st.target in ("ftrace_call", "ftrace_regs_call") for st in PLANS[scenario])
    publish = sum(st.target == "publish" for st in PLANS[scenario])
    assert closed_form(c, EMPTY_OF(scenario))["ipis"] == 3 * batches + 3 * tramps + publish
    c = RaceConfig(scenario, workload=SMALL, batch_max=batch_max, trampolines=False)
    assert closed_form(c, EMPTY_OF(scenario))["ipis"] == 3 * batches


def test_trapped_calls_fall_with_smaller_batches():
    # non-blocking strategies: trapped = N sum_j L_j (2 b_j w + E[R1 + R2]), L_j the
    # rate of batch j's sites; the round term sums to N L E[R1 + R2] whatever the
    # cut, the write term 2 w N sum_j L_j b_j shrinks with the batches (b_j <= b).
    # So trapped falls with smaller batches, from N L (2 K w + 2R) (one batch)
    # to per_site's N L (2 w + 2R), never below the rounds' floor N L 2R.
    seq = [closed_form(cfg(strategy="skip", batch_max=b, cpus=24), EMPTY)["trapped"]
           for b in (None, 256, 64, 8, 1)]
    assert all(x > y for x, y in pairwise(seq)), seq
    c = cfg(strategy="skip", cpus=24)
    t, stages = c.timing, patch_timeline(c, None)
    mu = t.round_moments(24)[0]
    rate = sum(g.sites.total for s in stages for g in s.groups) * 1e-9
    assert seq[-1] > 24 * rate * 2 * mu
    assert seq[0] == pytest.approx(24 * rate * (2 * n_sites(c) * t.write_ns + 2 * mu), rel=1e-9)
    assert seq[-1] == pytest.approx(24 * rate * (2 * t.write_ns + 2 * mu), rel=1e-9)


def test_patch_time_grows_with_batches():
    # each batch costs its three rounds: patch time rises as batches shrink
    seq = [closed_form(cfg(batch_max=b, cpus=24), EMPTY)["patch_ns"] for b in (None, 256, 8, 1)]
    assert all(x < y for x, y in pairwise(seq)), seq


def outcomes_with_means(scenario="seed"):
    """A synthetic outcome table: fractional per-call means (tests the counting, not the values)."""
    import pandas as pd
    from workbench.base.vocabulary import STRATEGIES
    from workbench.race.outcomes import TRAP_SITES
    from workbench.race.workload import SITE_KINDS
    rows = [{"scenario": scenario, "entry": "v5.3", "strategy": st, "site_kind": kind, "trap_site": site,
             "trapped_placements": 10, "violation": 0.3 + 0.1 * i, "dropped_tracer": 0.45 * (kind == "ordinary"),
             "dropped_livepatch": 1.5 * (kind == "livepatched"), "spurious": 0.25, "crash": 0.0}
            for i, st in enumerate(s for s in STRATEGIES if s != "stop_machine")
            for kind in SITE_KINDS for site in TRAP_SITES]
    return PerCallOutcomes(pd.DataFrame(rows), scenario)


@pytest.mark.parametrize("strategy", ["skip", "emulate_new"])
def test_monte_carlo_matches_closed_form_at_tp_vec_max(strategy):
    c = RaceConfig("seed", strategy, cpus=24, batch_max=TP_VEC_MAX)  # the full ~40,000-site workload
    r = simulate(c, outcomes_with_means(), trials=2000, seed=11).iloc[0]
    assert r["ipis_mean"] == r["ipis_cf"] == 3 * math.ceil(n_sites(c) / TP_VEC_MAX)
    for m in ("trapped", "violations", "dropped_tracer", "dropped_livepatch", "spurious",
              "patch_ns", "window_ns", "stall_ns"):
        assert abs(r[f"{m}_mean"] - r[f"{m}_cf"]) <= 4 * r[f"{m}_se"] + 1e-9 * abs(r[f"{m}_cf"]), m


def test_spin_with_batches_monte_carlo_matches_closed_form():
    c = cfg(strategy="spin", cpus=24, batch_max=64)
    r = simulate(c, EMPTY, trials=1500, seed=2).iloc[0]
    for m in ("trapped", "stall_ns", "patch_ns"):
        assert abs(r[f"{m}_mean"] - r[f"{m}_cf"]) <= 4 * r[f"{m}_se"] + 1e-9 * abs(r[f"{m}_cf"]), m


def test_batch_max_above_sites_is_one_batch():
    a = closed_form(cfg(), EMPTY)
    b = closed_form(cfg(batch_max=10**6), EMPTY)
    for m in ("trapped", "patch_ns", "ipis", "window_ns"):
        assert b[m] == pytest.approx(a[m], rel=1e-12), m


@pytest.mark.parametrize("bad", [0, -1, 1.5, "x", True])
def test_bad_batch_max(bad):
    with pytest.raises(ConfigError, match="batch_max"):
        cfg(batch_max=bad)


def test_batch_max_needs_the_batched_update():
    with pytest.raises(ConfigError, match="batch_max"):
        cfg(batching="per_site", batch_max=4)
    with pytest.raises(ConfigError, match="batch_max"):
        cfg(strategy="stop_machine", batch_max=4)


def test_cli_batch_max(tmp_path):
    import subprocess
    import sys
    for bad in ("0", "-1", "1.5"):
        p = subprocess.run([sys.executable, "-m", "workbench", "simulate", "--batch-max", bad,
                            "--cpus", "24", "--trials", "20", "--outcomes", "none"],
                           capture_output=True, text=True)
        assert p.returncode == 2, (bad, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
