"""Debian's 6.1 (and 6.12) ftrace_32.S against the workbench's trampolines: the outcome tables, row by row.

6.1's i386 trampolines under Debian's 686 options (frame pointers, the graph tracer's patchable jmp, no
return thunks: CONFIG_RETHUNK is off on i386 and call-depth tracking is x86_64-only and later than 6.1)
keep every rule the outcome table measures, so every per-trapped-call outcome must be equal. What
differs is their length: trapped_placements counts instruction boundaries, and 6.1's ftrace_caller
builds two frame-pointer frames (12 instructions more) and its ftrace_regs_caller a gap and a real
regs->sp (3 more). A mutation of the tree's file -- the regs caller no longer puts a changed regs->ip
back where it returns -- must change exactly the rows whose trapped call returns through it.
"""

import shutil

import pytest

from workbench.emulate.explore import load_outcome_table
from workbench.emulate.tree_compare import LENGTH_COLUMNS, RULE_COLUMNS, compare_outcome_tables
from workbench.emulate.watch import watch_call
from workbench.kernel.tree import FTRACE_32, PTRACE_H, open_kernel_tree
from workbench.kernel.tree_source import debian_kernel_tree
from workbench.emulate.mc.experiment import behaviours, check_all

#: strategies whose trapped call runs the trampoline the site is being switched to
_THROUGH_NEW = ("emulate_new", "emulate_regs_caller")


@pytest.fixture(scope="module")
def linux61():
    return open_kernel_tree(debian_kernel_tree("6.1"))


@pytest.fixture(scope="module")
def regs_ip_dropped(linux61, tmp_path_factory):
    """6.1's tree with ftrace_regs_caller no longer storing regs->ip below regs->sp (its return slot)."""
    root = tmp_path_factory.mktemp("regs_ip_dropped")
    for rel in ("Makefile", FTRACE_32, PTRACE_H):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(linux61.root / rel, root / rel)
    text = (root / FTRACE_32).read_text()
    store = "\tmovl\t%ecx, -4(%eax)\n"  # "place IP below the new SP"
    assert text.count(store) == 1
    (root / FTRACE_32).write_text(text.replace(store, ""))
    return open_kernel_tree(root)


@pytest.mark.parametrize("series, scenario, entry", [
    ("6.1", "seed", "v5.3"), ("6.1", "tracer_add_livepatch", "v5.3"), ("6.1", "shared_regs_caller", "v5.1"),
    # 6.12: ftrace_stub_direct_tramp with CALL_DEPTH_ACCOUNT (empty on i386), a pt_regs frame in return_to_handler
    ("6.12", "seed", "v5.3"), ("6.12", "tracer_add_livepatch", "v5.3")])
def test_debian_trees_keep_every_rule(series, scenario, entry):
    tree = open_kernel_tree(debian_kernel_tree(series))
    assert tree.version.startswith(series + ".")
    cmp = compare_outcome_tables(tree, scenario, entry)
    rows = cmp.rows
    assert (rows["present"] == "both").all(), rows[rows["present"] != "both"]
    for c in RULE_COLUMNS:
        assert (rows[f"{c}_ours"] == rows[f"{c}_tree"]).all(), c
    assert cmp.mismatches == [] and cmp.same
    assert set(rows["kernel_tree"]) == {tree.tag}
    # between them the scenarios trap at every kind of site
    assert len(rows) >= 50


def test_61_differs_by_its_trampolines_length(linux61):
    """seed, v5.3: only emulate_new and emulate_regs_caller run a trampoline after a trap at fentry, and
    their placements differ by exactly the instructions 6.1's trampoline adds to a call through it:
    emulate_regs_caller's through ftrace_regs_caller, emulate_new's through the new instruction's target
    (ftrace_regs_caller for a livepatched site, ftrace_caller for an ordinary one)."""
    extra = {}
    for fn, trampoline in (("do_IRQ", "ftrace_regs_caller"), ("fn_00001", "ftrace_caller")):
        ours = watch_call(fn, "livepatch,tracer")
        tree = watch_call(fn, "livepatch,tracer", tree=linux61)
        assert ours["path"][1] == tree["path"][1] == trampoline
        assert (tree["handlers"], tree["body"]) == (ours["handlers"], ours["body"])
        extra[trampoline] = tree["instructions"] - ours["instructions"]
    assert extra == {"ftrace_regs_caller": 3, "ftrace_caller": 12}
    rows = compare_outcome_tables(linux61, "seed", "v5.3").rows
    for r in rows.itertuples():
        if r.strategy not in _THROUGH_NEW or r.trap_phase == "sites:first":  # no trampoline after the trap
            want = 0
        elif r.strategy == "emulate_regs_caller" or r.site_kind == "livepatched":
            want = extra["ftrace_regs_caller"]
        else:
            want = extra["ftrace_caller"]
        assert r.trapped_placements_tree - r.trapped_placements_ours == want, r
        assert r.delay_traps_tree == r.delay_traps_ours


def test_a_dropped_regs_ip_store_loses_the_livepatch(linux61, regs_ip_dropped):
    """Every livepatched call that returns through the mutated ftrace_regs_caller runs its old body:
    the rows of strategies that send a trapped call there (and spin's, once it stops spinning) gain a
    violation and a dropped livepatch; every other row is unchanged."""
    call = watch_call("do_IRQ", "livepatch,tracer", tree=regs_ip_dropped)
    assert call["body"] == "old" and call["handlers"] == ["tracer"]
    assert "klp_ftrace_handler" in call["path"]  # the handler ran and set regs->ip; it was not honoured
    good = compare_outcome_tables(linux61, "seed", "v5.3").rows
    bad = compare_outcome_tables(regs_ip_dropped, "seed", "v5.3")
    assert any("do_IRQ" in m and "'livepatch'" in m for m in bad.mismatches)
    keys = ["strategy", "site_kind", "trap_site", "trap_phase"]
    m = good.merge(bad.rows, on=keys, suffixes=("", "_bad"))
    assert len(m) == len(good) == len(bad.rows)
    changed = 0
    for r in m.itertuples():
        hit = r.site_kind == "livepatched" and (r.strategy in _THROUGH_NEW or
                                               (r.strategy == "spin" and r.deadlock_tree == 0))
        if hit:
            assert (r.violation_tree, r.dropped_livepatch_tree) == (0, 0), r
            assert (r.violation_tree_bad, r.dropped_livepatch_tree_bad) == (1, 1), r
            changed += 1
        for c in RULE_COLUMNS:
            if not (hit and c in ("violation", "dropped_livepatch")):
                assert getattr(r, f"{c}_tree") == getattr(r, f"{c}_tree_bad"), (c, r)
    assert changed == 12  # 5 phases x 2 emulating strategies, and spin's 2 phases without a deadlock
    assert not bad.same and len(bad.differences()) == changed
    assert set(LENGTH_COLUMNS) <= {c.rsplit("_", 1)[0] for c in bad.rows.columns}


def test_the_trees_version_keys_the_outcome_cache_and_names_the_rows(linux61, regs_ip_dropped):
    ours = load_outcome_table("seed", "v5.3", progress=False)
    tree = load_outcome_table("seed", "v5.3", progress=False, tree=linux61)
    bad = load_outcome_table("seed", "v5.3", progress=False, tree=regs_ip_dropped)
    assert set(ours["kernel_tree"]) == {"workbench"}
    assert set(tree["kernel_tree"]) == {linux61.tag} and linux61.tag.startswith(f"linux-{linux61.version}@")
    assert set(bad["kernel_tree"]) == {regs_ip_dropped.tag} != {linux61.tag}  # same version, other file
    assert bad["violation"].sum() > tree["violation"].sum() == ours["violation"].sum()


def test_the_model_checker_runs_the_trees_trampolines(linux61, tmp_path):
    """Two calling CPUs model-checked with 6.1's trampolines reach the behaviours ours reach."""
    point = dict(scenario="seed", strategy="emulate_new", entry="v5.3", cpus=2)
    ours = check_all([point], progress=False, cache_root=tmp_path)
    tree = check_all([{**point, "kernel_tree_path": str(linux61.root)}], progress=False, cache_root=tmp_path)
    assert set(ours["kernel_tree"]) == {"workbench"} and set(tree["kernel_tree"]) == {linux61.tag}
    assert behaviours(tree).equals(behaviours(ours))
    assert (tree["mc_executions"].iloc[0], tree["mc_states"].iloc[0]) == \
        (ours["mc_executions"].iloc[0], ours["mc_states"].iloc[0])
