"""Trapped calls under each strategy, by executing them (issue: patching in motion)."""

import pytest

from workbench.base.vocabulary import STRATEGIES
from workbench.emulate.explore import explore, outcome_table, transition_table
from workbench.emulate.run import Run
from workbench.kernel.int3 import int3_emulate_call
from workbench.kernel.machine import Machine


@pytest.fixture(scope="module")
def seed_v53():
    calls, stats = explore("seed", strategies="all", entry="v5.3", progress=False)
    return calls, _by_kind(outcome_table(calls)), stats


@pytest.fixture(scope="module")
def seed_v51():
    calls, stats = explore("seed", strategies="all", entry="v5.1", progress=False)
    return calls, _by_kind(outcome_table(calls))


def _by_kind(table):
    """Per-trapped-call means per (strategy, site_kind), over trap sites and phases."""
    cols = ["violation", "dropped_tracer", "dropped_livepatch", "spurious", "crash", "deadlock", "delay_traps"]
    w = table[cols].mul(table["trapped_placements"], axis=0).assign(trapped_placements=table["trapped_placements"])
    g = w.groupby([table["strategy"], table["site_kind"]]).sum()
    g[cols] = g[cols].div(g["trapped_placements"], axis=0)
    return g


# docs/KERNEL.md §12 and the seed thread: what a trapped call of do_IRQ and of an
# ordinary function drops under each strategy (1 = always, 0 = never). The
# seed registers the tracer: function_enabled is 0 for the whole patch
# (tracing_start_function_trace()), so a missed tracer is never a drop here
# (tests/emulate/test_kernel_rules.py has the scenarios where it is).
EXPECT = {
    ("skip", "livepatched"): dict(violation=1, dropped_tracer=0, dropped_livepatch=1),
    ("emulate_old", "livepatched"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("emulate_regs_caller", "livepatched"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("emulate_new", "livepatched"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    # do_IRQ runs with interrupts off: spinning there never lets the sync IPI in
    # (unless it trapped after sync2: only the first-byte write, which needs no IPI, is left)
    ("spin", "livepatched"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("skip", "ordinary"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("emulate_old", "ordinary"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("emulate_regs_caller", "ordinary"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("emulate_new", "ordinary"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0),
    ("spin", "ordinary"): dict(violation=0, dropped_tracer=0, dropped_livepatch=0, deadlock=0),
}


@pytest.mark.parametrize("key", list(EXPECT))
def test_seed_v53_trapped_calls(seed_v53, key):
    _, table, _ = seed_v53
    row = table.loc[key]
    assert row["trapped_placements"] > 0
    for col, want in EXPECT[key].items():
        assert row[col] == want, col
    assert row["crash"] == 0 and row["spurious"] == 0


def test_spin_deadlocks_only_where_interrupts_are_off(seed_v53):
    _, table, _ = seed_v53
    assert 0.5 < table.loc[("spin", "livepatched"), "deadlock"] < 1
    assert (table.drop(index=("spin", "livepatched"))["deadlock"] == 0).all()


def test_spin_delays_and_nothing_else_does(seed_v53):
    _, table, _ = seed_v53
    assert table.loc[("spin", "livepatched"), "delay_traps"] > 0
    others = table.drop(index="spin", level="strategy")
    assert (others["delay_traps"] == 0).all()


def test_stop_machine_traps_nothing_and_reports_its_stall(seed_v53):
    calls, table, stats = seed_v53
    assert "stop_machine" not in table.index.get_level_values("strategy")
    sm = calls[calls.strategy == "stop_machine"]
    assert len(sm) > 0 and not sm.trapped.any() and not sm.crash.any()
    # the sites only: with the DYNAMIC livepatch the trampolines already call the list function
    assert stats["stop_machine"]["stalls"] == 1


def test_no_crash_or_spurious_anywhere_in_the_seed(seed_v53):
    calls, _, _ = seed_v53
    assert not calls.crash.any() and (calls.spurious == 0).all() and not calls.stale.any()


def test_exhaustive_reports_raw_and_distinct(seed_v53):
    _, _, stats = seed_v53
    for s in STRATEGIES:
        assert stats[s]["raw"] > stats[s]["distinct"] > 0


@pytest.mark.parametrize("strategy", ["emulate_regs_caller", "emulate_new"])
def test_v51_call_emulation_crashes_with_the_faulting_address(seed_v51, strategy):
    calls, table = seed_v51
    assert table.loc[(strategy, "livepatched"), "crash"] == 1
    crashed = calls[(calls.strategy == strategy) & calls.crash]
    # int3_emulate_push wrote below the garbage "regs->sp": the caller's return address
    assert (crashed.crash_addr > 0).all()
    assert crashed.crash_reason.str.contains("write fault").all()


def test_v51_skip_does_not_crash(seed_v51):
    calls, table = seed_v51
    assert not calls[calls.strategy == "skip"].crash.any()
    assert table.loc[("skip", "livepatched"), "violation"] == 1


def _selftest(entry):
    """7457c0da024b: an int3 whose handler emulates a call to int3_magic(&val)."""
    from workbench.kernel.image import build_image

    im = build_image(8)

    def handler(m, cpu, regs):
        if regs.ip - 1 != im.sym("int3_selftest_ip"):
            return False
        int3_emulate_call(regs, im.sym("int3_magic"))
        return True

    m = Machine(im, 1, entry=entry, int3_handler=handler)
    cpu = m.cpus[0]
    esp = cpu.reg("esp")
    stop = im.sym("ftrace_stub")  # a bare ret the int3 path never passes
    m.write32(esp - 4, stop)
    cpu.set_reg("esp", esp - 4)
    cpu.set_reg("eip", im.sym("int3_selftest"))
    cpu.run(1000, until=stop)
    return cpu, esp


def test_int3_selftest_passes_with_the_stack_gap():
    cpu, esp = _selftest("v5.3")
    assert cpu.crash is None
    assert cpu.reg("eax") == 1 and cpu.reg("esp") == esp


def test_int3_selftest_fails_without_the_gap():
    cpu, esp = _selftest("v5.1")
    assert cpu.crash is not None or cpu.reg("eax") != 1 or cpu.reg("esp") != esp


def test_naive_byte_writes_tear_instructions():
    calls, _ = explore("seed", strategies="skip", entry="v5.3", poke_method="naive", progress=False)
    t = transition_table(calls)
    assert t.crashes.sum() > 0
    torn = calls[calls.crash & calls.phase.str.contains("byte")]
    assert len(torn) > 0 and torn.crash_reason.str.contains("fetch|invalid|exception", case=False).all()


def test_breakpoint_without_syncs_leaves_stale_text():
    calls, _ = explore("seed", strategies="skip", entry="v5.3", poke_method="no_sync", progress=False)
    assert calls[(calls.phase == "done")].stale.any() or \
        calls[(calls.phase == "done")].crash_reason.str.contains("unhandled int3").any()
    synced, _ = explore("seed", strategies="skip", entry="v5.3", progress=False)
    assert not synced.stale.any() and not synced.crash.any()


def test_exhaustive_counts_are_identical_between_runs():
    a, sa = explore("seed", strategies=["skip", "spin"], entry="v5.3", progress=False)
    b, sb = explore("seed", strategies=["skip", "spin"], entry="v5.3", progress=False)
    assert sa == sb
    assert a.equals(b)


@pytest.mark.parametrize("strategy, steps", [
    ("skip", None), ("emulate_new", None), ("emulate_old", None),
    # spin's trap counts depend on where every later step lands: its sync and tail steps
    ("spin", ("sites:sync1", "sites:tail", "sites:sync2")),
])
def test_merged_placements_equal_every_raw_placement(strategy, steps):
    """The equivalence classes are sound: executing every placement agrees,
    down to the phase each call trapped in and how often it trapped."""
    from workbench.emulate.exhaustive import exhaustive_function
    from workbench.emulate.run import CALL_CAP

    run = Run("seed", strategy, "v5.3")
    ks = None if steps is None else [i for i, s in enumerate(run.steps) if s.name in steps]
    merged, raw_m, dist_m = exhaustive_function(run, "do_IRQ", 200, CALL_CAP, lambda n: None, steps=ks)
    full, raw_f, dist_f = exhaustive_function(run, "do_IRQ", 200, CALL_CAP, lambda n: None,
                                                  merge=False, steps=ks)
    assert raw_m == raw_f and dist_f == raw_f > dist_m

    def dist(rows):
        out = {}
        for r in rows:
            if r["seq"] == 0:
                k = (r["schedule"], r["trapped"], r["trap_phase"], r["traps"], r["body"],
                     r["tracer_runs"], r["crash"])
                out[k] = out.get(k, 0) + r["weight"]
        return out

    assert dist(merged) == dist(full)


def test_bad_exploration_input():
    from workbench.base.errors import ConfigError

    for kw, msg in [(dict(slice_mean=1), "slice_mean: 1 is outside"), (dict(functions=[]), "functions: give"),
                    (dict(strategies=3), "strategies: expected"), (dict(patch_gap=0), "patch_gap: 0 is outside")]:
        args = dict(strategies="skip", mode="random", schedules=1, progress=False) | kw
        with pytest.raises(ConfigError, match=msg):
            explore("seed", **args)


def test_spinning_cpus_let_the_ipi_in():
    """Several CPUs spinning on int3s must not hold a sync round forever."""
    calls, _ = explore("seed", strategies="spin", entry="v5.3", mode="random", cpus=4, schedules=2, progress=False)
    spun = calls[calls.trapped]
    assert len(spun) > 0 and not calls.crash.any()
    assert (spun.delay_traps > 0).any() and spun.delay_traps.max() < 1000


def test_random_mode_several_cpus_is_reproducible():
    a, _ = explore("seed", strategies="skip", entry="v5.3", mode="random", cpus=3, schedules=2, seed=7, progress=False)
    b, _ = explore("seed", strategies="skip", entry="v5.3", mode="random", cpus=3, schedules=2, seed=7, progress=False)
    assert a.equals(b)
    assert set(a.cpu) == {0, 1, 2} and len(a) > 50
    assert a.trapped.any() and (a[a.trapped & (a.site_kind == "livepatched")].violation == 1).all()


def test_a_crashing_cpu_is_a_recorded_outcome():
    calls, _ = explore("seed", strategies="emulate_new", entry="v5.1", mode="random", cpus=2, schedules=2,
                       progress=False)
    assert calls.crash.any()
    assert (calls[calls.crash].crash_reason != "").all()


def test_malformed_scenario_file(tmp_path):
    from workbench.base.errors import ConfigError
    from workbench.emulate.scenario import load_scenario

    p = tmp_path / "bad.toml"
    p.write_text('[ops.x]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["y"]\n')
    with pytest.raises(ConfigError, match=r"transition.after: unknown value 'y'; choose from x"):
        load_scenario(str(p))
    p.write_text("[ops.x\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(str(p))
    p.write_text('[ops.x]\nkind = "tracr"\n[transition]\nbefore = []\nafter = ["x"]\n')
    with pytest.raises(ConfigError, match="kind: unknown value 'tracr'; choose from tracer, livepatch"):
        load_scenario(str(p))


def test_user_scenario_runs(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[ops.t]\nkind = "tracer"\nfunctions = ["fn_00001"]\n'
                 '[transition]\nbefore = []\nafter = ["t"]\n')
    calls, _ = explore(str(p), strategies="skip", entry="v5.3", functions=["fn_00001"], progress=False)
    t = outcome_table(calls)
    # a single ops: the site and then ftrace_call (list function -> the tracer) change;
    # the tracer is being registered (function_enabled = 0): its misses are no drops
    assert (t.dropped_tracer == 0).all() and set(t.trap_site) == {"fentry", "ftrace_call"}
    # traps happen only inside a breakpoint window: after an int3 step, before its batch is done
    for phase in t.trap_phase:
        batch, step = phase.rsplit(":", 1)
        assert batch in ("sites", "ftrace_call:final") and step != "done"
