"""Debian's 6.1 ftrace_64.S against the workbench's x86_64 trampolines: the outcome tables, row by row.

6.1's x86_64 trampolines under Debian's amd64 options (return thunks: every RET a jump to
__x86_return_thunk; no frame pointers; ftrace_caller passing a partial pt_regs and honouring a changed
regs->ip; ftrace_regs_caller's test for a direct call) keep every rule the outcome table measures, so
every per-trapped-call outcome must equal ours. Their per-ops trampolines are copies of the tree's code,
made as 6.1's create_trampoline() makes them. What differs is their length: trapped_placements counts
instruction boundaries. A mutation of the tree's file -- ftrace_regs_caller no longer writes a changed
regs->ip back into its return slot, the path livepatch (IPMODIFY) needs -- must change exactly the rows
whose trapped livepatched call returns through it, the shared one or a per-ops copy.
"""

import json
import shutil

import pytest

from workbench.emulate.explore import load_outcome_table
from workbench.emulate.tree_compare import RULE_COLUMNS, compare_outcome_tables
from workbench.emulate.watch import watch_call
from workbench.kernel.tree import FTRACE_64, PTRACE_H, open_kernel_tree
from workbench.kernel.tree_source import debian_kernel_tree
from workbench.ui.cli import main

#: strategies whose trapped call runs a trampoline after the trap (on v5.2, which has the gap)
_THROUGH = ("emulate_new", "emulate_old", "emulate_regs_caller")

# about 30 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(30)


@pytest.fixture(scope="module")
def linux61():
    return open_kernel_tree(debian_kernel_tree("6.1"), "x86_64")


@pytest.fixture(scope="module")
def regs_ip_dropped(linux61, tmp_path_factory):
    """6.1's tree with ftrace_regs_caller no longer copying regs->ip into its return slot."""
    root = tmp_path_factory.mktemp("regs_ip_dropped_64")
    for rel in ("Makefile", FTRACE_64, PTRACE_H):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(linux61.root / rel, root / rel)
    text = (root / FTRACE_64).read_text()
    store = "\tmovq %rax, MCOUNT_REG_SIZE+8(%rsp)\n"  # "Handlers can change the RIP"
    assert text.count(store) == 1
    (root / FTRACE_64).write_text(text.replace(store, ""))
    return open_kernel_tree(root, "x86_64")


@pytest.fixture(scope="module")
def seed(linux61, regs_ip_dropped):
    """seed on the v5.2 entry: 6.1's table against ours, and the mutated tree's."""
    return compare_outcome_tables(linux61, "seed", "v5.2"), compare_outcome_tables(regs_ip_dropped, "seed", "v5.2")


@pytest.mark.parametrize("scenario, entry", [
    ("seed", "v5.1"), ("shared_regs_caller", "v5.2"), ("tracer_add_probe", "v5.2"),
    ("tracer_remove_livepatch", "v5.2")])
def test_61_keeps_every_rule(linux61, scenario, entry):
    _same_rules(compare_outcome_tables(linux61, scenario, entry), linux61)


def test_61_keeps_every_rule_seed_v52(linux61, seed):
    _same_rules(seed[0], linux61)


def test_612_keeps_every_rule():
    """6.12: CALL_DEPTH_ACCOUNT in every trampoline (empty: no call-depth stuffing on the emulated CPU),
    ALTERNATIVE returns, ftrace_stub_direct_tramp, asm-offsets.h included; the same outcomes."""
    tree = open_kernel_tree(debian_kernel_tree("6.12"), "x86_64")
    assert tree.version.startswith("6.12.")
    _same_rules(compare_outcome_tables(tree, "seed", "v5.2"), tree)


def _same_rules(cmp, tree):
    rows = cmp.rows
    assert (rows["present"] == "both").all(), rows[rows["present"] != "both"]
    assert set(rows["arch"]) == {"x86_64"}
    for c in RULE_COLUMNS:
        assert (rows[f"{c}_ours"] == rows[f"{c}_tree"]).all(), c
    assert cmp.mismatches == [] and cmp.same
    assert set(rows["kernel_tree"]) == {tree.tag}
    assert len(rows) >= 25


def test_61_differs_by_its_trampolines_length(linux61, seed):
    """seed, v5.2: a trapped call that an emulating strategy sends through a trampoline takes the
    instructions 6.1's trampoline adds to a call through it, measured by `call` on both images: 4 through
    ftrace_regs_caller (shared, or its per-ops copy: orig_ax's test for a direct call) and 5 through the
    per-ops copy of ftrace_caller (its partial pt_regs and the copy of regs->ip back)."""
    extra = {}
    for fn, ops, via in (("do_IRQ", "livepatch,tracer", "ftrace_regs_caller"),
                         ("do_IRQ", "livepatch", "regs copy"), ("fn_00001", "tracer", "caller copy")):
        ours = watch_call(fn, ops, arch="x86_64")
        tree = watch_call(fn, ops, arch="x86_64", tree=linux61)
        assert ours["path"][1] == tree["path"][1]
        assert tree["path"][1] == via or tree["path"][1].startswith("trampoline:")
        assert (tree["handlers"], tree["body"]) == (ours["handlers"], ours["body"])
        extra[via] = tree["instructions"] - ours["instructions"]
    assert extra == {"ftrace_regs_caller": 4, "regs copy": 4, "caller copy": 5}
    # seed: livepatch alone before (its per-ops copy of ftrace_regs_caller; ordinary sites are NOPs),
    # livepatch and the tracer after (ftrace_regs_caller shared; the tracer's copy of ftrace_caller)
    after = {"livepatched": "ftrace_regs_caller", "ordinary": "caller copy"}
    before = {"livepatched": "regs copy", "ordinary": None}
    for r in seed[0].rows.itertuples():
        if r.strategy not in _THROUGH or r.trap_phase == "sites:first":  # no trampoline after the trap
            via = None
        elif r.strategy == "emulate_regs_caller":
            via = "ftrace_regs_caller"
        else:
            via = (after if r.strategy == "emulate_new" else before)[r.site_kind]
        if r.strategy != "spin":  # spin's steps land a fixed number of instructions apart: it waits differently
            assert r.trapped_placements_tree - r.trapped_placements_ours == extra.get(via, 0), r
            assert r.delay_traps_tree == r.delay_traps_ours


def test_a_dropped_regs_ip_store_loses_the_livepatch(linux61, regs_ip_dropped, seed):
    """Every livepatched call that returns through the mutated ftrace_regs_caller (shared, or the copy
    create_trampoline() made of it for the livepatch's ops) runs its old body: the rows of the strategies
    that send a trapped call there (and spin's, once it stops spinning) gain a violation and a dropped
    livepatch; every other row is unchanged."""
    for ops in ("livepatch,tracer", "livepatch"):
        call = watch_call("do_IRQ", ops, arch="x86_64", tree=regs_ip_dropped)
        assert call["body"] == "old" and "livepatch" not in call["handlers"], ops
        assert "klp_ftrace_handler" in call["path"]  # the handler ran and set regs->ip; it was not honoured
        assert watch_call("do_IRQ", ops, arch="x86_64", tree=linux61)["body"] == "new"
    good, bad = seed
    assert any("do_IRQ" in m and "'livepatch'" in m for m in bad.mismatches)
    keys = ["strategy", "site_kind", "trap_site", "trap_phase"]
    m = good.rows.merge(bad.rows, on=keys, suffixes=("", "_bad"))
    assert len(m) == len(good.rows) == len(bad.rows)
    changed = 0
    for r in m.itertuples():
        hit = r.site_kind == "livepatched" and (r.strategy in _THROUGH or
                                               (r.strategy == "spin" and r.deadlock_tree == 0))
        if hit:
            assert (r.violation_tree, r.dropped_livepatch_tree) == (0, 0), r
            assert (r.violation_tree_bad, r.dropped_livepatch_tree_bad) == (1, 1), r
            changed += 1
        for c in RULE_COLUMNS:
            if not (hit and c in ("violation", "dropped_livepatch")):
                assert getattr(r, f"{c}_tree") == getattr(r, f"{c}_tree_bad"), (c, r)
    # 5 phases x 3 strategies (emulate_old too: the old instruction calls the livepatch's per-ops copy),
    # and spin's 2 phases without a deadlock
    assert changed == 17
    assert not bad.same and len(bad.differences()) == changed


def test_the_trees_version_keys_the_outcome_cache_and_names_the_rows(linux61, regs_ip_dropped):
    ours = load_outcome_table("seed", "v5.2", progress=False, arch="x86_64")
    tree = load_outcome_table("seed", "v5.2", progress=False, arch="x86_64", tree=linux61)
    bad = load_outcome_table("seed", "v5.2", progress=False, arch="x86_64", tree=regs_ip_dropped)
    assert set(ours["kernel_tree"]) == {"workbench"}
    assert set(tree["kernel_tree"]) == {linux61.tag} and linux61.tag.startswith(f"linux-{linux61.version}@")
    assert set(bad["kernel_tree"]) == {regs_ip_dropped.tag} != {linux61.tag}  # same version, other file
    assert bad["violation"].sum() > tree["violation"].sum() == ours["violation"].sum()


def test_check_tree_one_command(linux61, regs_ip_dropped, capsys):
    args = ["check-tree", "--arch", "x86_64", "--scenario", "seed", "--entry", "v5.2", "--quiet"]
    assert main([*args, "--kernel-tree", str(linux61.root)]) == 0
    out = capsys.readouterr().out
    assert f"linux {linux61.version} at {linux61.root} ({linux61.tag}): arch/x86/kernel/ftrace_64.S" in out
    assert "int3 entry: the workbench's (v5.2); the tree's entry_64.S is not assembled" in out
    assert "seed" in out and "same outcomes" in out
    assert main([*args, "--kernel-tree", str(regs_ip_dropped.root), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["arch"], doc["file"], doc["int3_entry"], doc["same"]) == (
        "x86_64", "arch/x86/kernel/ftrace_64.S", "workbench", False)
    assert doc["version"] == regs_ip_dropped.version and doc["kernel_tree"] == regs_ip_dropped.tag
    assert sum(not r["same_rules"] for r in doc["rows"]) == 17


def test_a_tree_opened_for_i386_runs_its_ftrace_64_on_x86_64(linux61):
    """Whatever arch a tree was opened for, an x86_64 run assembles its ftrace_64.S and says so."""
    as_i386 = open_kernel_tree(linux61.root)
    assert as_i386.arch == "i386" and as_i386.tag != linux61.tag
    table = load_outcome_table("seed", "v5.2", progress=False, arch="x86_64", tree=as_i386)
    assert set(table["kernel_tree"]) == {linux61.tag}
    assert watch_call("do_IRQ", "livepatch", arch="x86_64", tree=as_i386)["kernel_tree"] == linux61.tag


def test_the_model_checker_runs_the_trees_ftrace_64(linux61, regs_ip_dropped, tmp_path):
    """Two calling CPUs model-checked on the x86_64 machine with 6.1's ftrace_64.S (and its per-ops
    copies) reach exactly the behaviours ours reach; with the regs->ip store dropped, a trapped do_IRQ
    emulated into ftrace_regs_caller runs its old body in some interleaving."""
    from workbench.emulate.mc.experiment import behaviours, check_all

    point = dict(arch="x86_64", scenario="seed", strategy="emulate_regs_caller", entry="v5.2", cpus=2)
    ours = check_all([point], progress=False, cache_root=tmp_path)
    tree = check_all([{**point, "kernel_tree_path": str(linux61.root)}], progress=False, cache_root=tmp_path)
    assert set(tree["kernel_tree"]) == {linux61.tag} and set(tree["arch"]) == {"x86_64"}
    assert behaviours(tree).equals(behaviours(ours))
    assert not ours["violation"].any() and not ours["crash"].any()
    bad = check_all([{**point, "kernel_tree_path": str(regs_ip_dropped.root)}], progress=False, cache_root=tmp_path)
    lost = bad[(bad["function"] == "do_IRQ") & bad["trapped"]]
    assert (lost["body"] == "old").any() and lost["violation"].sum() > 0
