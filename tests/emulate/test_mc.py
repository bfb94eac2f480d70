"""Model checking with several calling CPUs: exhaustiveness against naive enumeration,
the known multi-CPU bugs found by negative controls and not by the fixes,
counterexample files, backends and resume, bad input."""

import collections
import json
import subprocess
import sys
from itertools import pairwise

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.mc.check import bad_outcome, check, default_calls, merge, outcome_rows, subtrees
from workbench.emulate.mc.experiment import check_all
from workbench.emulate.mc.dpor import linearizations, naive, source_dpor
from workbench.emulate.mc.schedule import load_schedule, replay_steps, save_schedule
from workbench.emulate.mc.config import McConfig, dependent
from workbench.emulate.mc.system import McSystem

# one site (schedule's), both CPUs call it: small enough to enumerate every interleaving
TINY = dict(calls=(("schedule",), ("schedule",)), items=("sites",))

# about 70 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(70)


def _crashes(result):
    return {c[5] for o in result["outcomes"] for calls in o[0] for c in calls if c[5]}


def _deadlocks(result):
    return [o for o in result["outcomes"] if o[1]]


@pytest.mark.parametrize("kw", [
    dict(TINY, poke_method="no_sync"),  # two callers, every clear and text store racing
    dict(calls=(("schedule",),), items=("sites",)),  # one caller, all four IPI rounds
    dict(calls=(("schedule",),), items=("sites",), strategy="spin", poke_method="no_sync"),
    # do_IRQ begins with IF cleared: an IPI that arrives after can never be taken (the ack is
    # disabled for good), so that race is never executed and must be found all the same
    dict(calls=(("do_IRQ",),), items=("sites",), strategy="spin"),
    dict(calls=(("do_IRQ",),), items=("sites",), strategy="emulate_new"),
    # the x86_64 machine: its own entry, RIP-relative loads of the patched data, per-ops trampolines
    dict(TINY, poke_method="no_sync", arch="x86_64"),
    dict(calls=(("do_IRQ",),), items=("sites",), strategy="spin", arch="x86_64"),
    # schedule's site calls the tracer's own trampoline, whose tracer reads function_enabled with a
    # RIP-relative load: a data operation racing with the patcher's store
    dict(calls=(("schedule",),), items=("sites", "function_enabled"), coherent_fetch=True, arch="x86_64"),
])
def test_reduced_exploration_reaches_every_outcome_with_the_naive_weights(kw):
    system = McSystem(McConfig(**kw))
    reduced, weights = collections.Counter(), collections.Counter()

    def visit(ex):
        reduced[ex.outcome] += 1
        weights[ex.outcome] += linearizations(ex.events, dependent)

    stats = source_dpor(system, dependent, visit)
    if kw.get("items") == ("sites", "function_enabled"):  # the load is seen: the race is there to explore
        seen = []
        source_dpor(system, dependent, lambda ex: seen.extend(e for e in ex.events if e.tid and e.kind == "data"))
        assert seen
    full = collections.Counter()
    n = naive(system, lambda ex: full.update([ex.outcome]))
    assert set(reduced) == set(full)
    # each explored execution stands for its linearizations: together exactly the naive interleavings
    assert weights == full
    assert sum(weights.values()) == n
    assert stats.executions < n  # a real reduction (factor printed by benchmarks/bench_mc.py)


@pytest.mark.parametrize("kw", [
    dict(TINY, poke_method="no_sync"),
    dict(calls=(("schedule",),), items=("sites",), strategy="spin", poke_method="no_sync"),
    dict(calls=default_calls(2)),  # the seed, do_IRQ against schedule
    dict(calls=default_calls(2), strategy="spin"),  # and a deadlock that disables an ack for good
    dict(calls=default_calls(2, arch="x86_64"), arch="x86_64", strategy="emulate_regs_caller"),
])
@pytest.mark.parametrize("roots", [4, 64])
def test_subtrees_together_are_the_whole_exploration(kw, roots):
    """Split into subtrees explored apart, the exploration reaches the same outcomes with the
    same trace counts (each Mazurkiewicz trace in exactly one subtree), and every reported
    schedule replays to its outcome."""
    cfg = McConfig(**kw)
    whole = check(cfg)
    roots_ = subtrees(cfg, roots)
    assert len(roots_) >= min(roots, 4) and len(set(roots_)) == len(roots_)
    joined = merge([check(cfg, prefix=r) for r in roots_])
    assert {o: r["traces"] for o, r in joined["outcomes"].items()} == \
        {o: r["traces"] for o, r in whole["outcomes"].items()}
    assert joined["stats"]["executions"] == whole["stats"]["executions"]
    system = McSystem(cfg)
    for o, rec in joined["outcomes"].items():
        system.replay(rec["schedule"])
        assert system.outcome() == o
        assert rec["switches"] <= whole["outcomes"][o]["switches"] or not bad_outcome(o)


def test_a_subtree_cut_by_its_sleep_sets_keeps_its_statistics_in_a_row_typed_like_the_others():
    from workbench.emulate.mc.experiment import MC

    kw = dict(calls=[["schedule"], ["schedule"]], items=["sites"], poke_method="no_sync")
    rows = [MC.run(MC.normalize({**kw, "prefix": list(r)}), 0, 0, None)
            for r in subtrees(McConfig(**{k: tuple(map(tuple, v)) if k == "calls" else v for k, v in kw.items()}))]
    empty = [r for r in rows if r[0]["outcome"] < 0]
    assert empty and all(len(r) == 1 and r[0]["mc_states"] > 0 for r in empty)
    real = next(r for r in rows if r[0]["outcome"] >= 0)[0]
    assert {k: type(v) for k, v in empty[0][0].items()} == {k: type(v) for k, v in real.items()}
    joined = check_all([kw], cache=False, progress=False)
    assert (joined["outcome"] >= 0).all()
    assert joined["mc_states"].iloc[0] == sum(r[0]["mc_states"] for r in rows)


def test_the_progress_bar_counts_states_and_pruned_executions_from_the_workers(capsys):
    pts = [dict(calls=[["schedule"], ["schedule"]], items=["sites"], poke_method="no_sync")]
    frame = check_all(pts, backend="local", jobs=2, cache=False, progress=True)
    err = capsys.readouterr().err
    states, pruned = int(frame["mc_states"].iloc[0]), int(frame["mc_blocked"].iloc[0])
    assert f"states={states}" in err and f"pruned={pruned}" in err  # the totals over every subtree


def test_a_prefix_outside_the_split_is_refused():
    cfg = McConfig(**TINY, poke_method="no_sync")
    with pytest.raises(ConfigError, match="prefix"):
        check(cfg, prefix=(7,))


def test_null_vec_found_only_without_a_sync_between_the_clears():
    null = "NULL pointer dereference"
    racy = check(McConfig(**TINY, poke_method="racy_clear_nosync3", coherent_fetch=True))
    assert any(null in c for c in _crashes(racy))
    fixed = check(McConfig(**TINY, poke_method="fixed_clear_nosync3", coherent_fetch=True))
    assert not any(null in c for c in _crashes(fixed))
    # with ftrace's third sync the race cannot happen even with the racy clears:
    # no CPU can be in the handler (IF clear) once that sync has completed
    for poke in ("racy_clear", "breakpoint"):
        assert not _crashes(check(McConfig(**TINY, poke_method=poke))), poke


def test_a_handler_waiting_with_interrupts_off_deadlocks_the_sync():
    bad = check(McConfig(**TINY, handler="irqoff_wait"))
    dl = _deadlocks(bad)
    assert dl
    # spin returns to the int3 with interrupts as they were, so the IPI gets through
    assert not _deadlocks(check(McConfig(**TINY, strategy="spin")))


def test_missing_syncs_with_two_callers_crash_and_the_protocol_does_not():
    assert _crashes(check(McConfig(**TINY, poke_method="no_sync")))
    assert not _crashes(check(McConfig(**TINY)))


def test_counterexample_file_replays_step_by_step(tmp_path):
    res = check(McConfig(**TINY, poke_method="racy_clear_nosync3", coherent_fetch=True), out_dir=tmp_path)
    assert res["files"]
    first = res["files"][0]  # fewest context switches first
    cfg, sched, expect = load_schedule(first)
    steps = list(replay_steps(cfg, sched, expect))
    assert steps[-1]["outcome"] == expect
    assert any("pt_regs" in c for s in steps for c in s["cpus"])
    switches = [json.loads(open(f).read())["note"] for f in res["files"]]
    counts = [int(s.split()[0]) for s in switches]
    assert counts == sorted(counts)


def test_damaged_or_mismatching_schedule_file_is_one_line_exit_2(tmp_path):
    res = check(McConfig(**TINY, poke_method="no_sync"), out_dir=tmp_path)
    f = res["files"][0]
    doc = json.loads(open(f).read())
    damaged = tmp_path / "damaged.json"
    damaged.write_text(open(f).read().replace('"schedule": [', '"schedule": [0, ', 1))
    cfg, sched, _ = load_schedule(f)
    other = tmp_path / "other.json"  # a valid file whose schedule does not fit its configuration
    save_schedule(other, McConfig(**TINY), sched, doc["outcome"])
    for path in (damaged, other, tmp_path / "missing.json"):
        r = subprocess.run([sys.executable, "-m", "workbench", "replay", str(path)], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: schedule file") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.stderr


def test_more_calling_cpus_than_supported_is_refused():
    r = subprocess.run([sys.executable, "-m", "workbench", "model-check", "--cpus", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cpus: 4 is outside the valid range [2, 3]" in r.stderr
    with pytest.raises(ConfigError):
        McConfig(calls=(("schedule",),) * 4).checked()


def test_same_results_on_every_backend_and_after_a_rerun(tmp_path):
    pts = [dict(strategy=s, calls=[["schedule"], ["schedule"]], items=["sites"], poke_method="no_sync")
           for s in ("emulate_new", "skip")]
    n0 = len(subtrees(McConfig(calls=(("schedule",), ("schedule",)), items=("sites",), poke_method="no_sync")))
    n1 = len(subtrees(McConfig(calls=(("schedule",), ("schedule",)), items=("sites",), poke_method="no_sync",
                               strategy="skip")))
    assert n0 > 1 and n1 > 1  # the work items are subtrees, not whole configurations
    # a run stopped after the first configuration left its subtrees in the cache
    partial = check_all(pts[:1], backend="serial", cache_root=tmp_path, progress=False)
    assert partial.attrs["sweep"]["computed"] == n0
    serial = check_all(pts, backend="serial", cache=False, progress=False)
    assert set(serial["mc_subtrees"]) == {n0, n1}
    local = check_all(pts, backend="local", jobs=2, cache_root=tmp_path, progress=False)
    assert local.attrs["sweep"]["cached"] == n0 and local.attrs["sweep"]["computed"] == n1
    dask = check_all(pts, backend="dask", jobs=2, cache=False, progress=False)
    again = check_all(pts, backend="serial", cache_root=tmp_path, progress=False)  # resumed from the cache
    assert again.attrs["sweep"]["cached"] == n0 + n1
    reverse = check_all(pts[::-1], backend="local", jobs=2, cache=False, progress=False)
    for other in (local, dask, again):
        assert serial.equals(other)
    key = ["strategy", "outcome", "cpu", "call"]
    assert serial.sort_values(key).reset_index(drop=True).equals(
        reverse.sort_values(key).reset_index(drop=True))
    # one work item per configuration gives the same outcomes and trace counts
    whole = check_all(pts, backend="serial", cache=False, progress=False, split=1)
    same = [c for c in serial.columns if c not in ("schedule", "switches") and not c.startswith("mc_")]
    assert serial[same].equals(whole[same])


def test_a_killed_exploration_resumes_from_its_finished_subtrees(tmp_path):
    """SIGKILL the CLI mid-exploration (local workers), rerun it: the finished subtrees come
    from the cache, and the outcome table equals an uninterrupted run's."""
    import os
    import signal
    import time

    serial = [sys.executable, "-m", "workbench", "model-check", "--cpus", "2",
              "--strategy", "spin", "--json", "--quiet"]
    cmd = serial + ["--jobs", "2"]

    def env(d):
        return {**os.environ, "WORKBENCH_DATA": str(d)}

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--cex-dir", str(killed / "cex")], env=env(killed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None and \
                len(list((killed / "cache").rglob("*.json"))) < 3:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = {f: f.stat().st_mtime_ns for f in (killed / "cache").rglob("*.json")}
    done = len(finished)
    resumed = subprocess.run(cmd + ["--cex-dir", str(killed / "cex")], env=env(killed), capture_output=True,
                             text=True, check=True)
    fresh = subprocess.run(serial + ["--cex-dir", str(tmp_path / "fresh" / "cex")],
                           env=env(tmp_path / "fresh"), capture_output=True, text=True, check=True)
    a, b = json.loads(resumed.stdout), json.loads(fresh.stdout)
    assert a["outcomes"] == b["outcomes"] and a["outcomes"]
    assert [open(f).read() for f in a["counterexamples"]] == [open(f).read() for f in b["counterexamples"]]
    total = len(list((tmp_path / "fresh" / "cache").rglob("*.json")))
    assert 3 <= done < total  # killed part-way
    assert all(f.stat().st_mtime_ns == t for f, t in finished.items())  # the rerun added only the missing ones


def test_step_viewer_opens_a_counterexample(tmp_path):
    from workbench.ui.schedule_viewer import ScheduleViewer

    res = check(McConfig(**TINY, handler="irqoff_wait"), out_dir=tmp_path)
    v = ScheduleViewer(res["files"][0])
    v.slider.value = v.slider.max
    assert "DEADLOCK" in v.view.value
    v.slider.value = 1
    assert "C0 at" in v.view.value
    n = len(v.stepper)
    assert v.status.value.startswith(f"<b>step 2 of {n}</b>")
    assert v.play.max == n - 1


def test_step_viewer_jumps_from_event_to_event_to_the_outcome(tmp_path):
    """"next event" stops where a site's bytes change, a CPU enters or leaves the int3 handler, a CPU
    crashes, or at the outcome; every step it skips has none of these."""
    from workbench.ui.schedule_viewer import ScheduleViewer

    res = check(McConfig(**TINY, handler="irqoff_wait"), out_dir=tmp_path)
    v = ScheduleViewer(res["files"][0])
    s, stops = v.stepper, [0]
    while v.jump_to_event():
        stops.append(v.slider.value)
    assert stops[-1] == len(s) - 1 and s.event(stops[-1]) == "outcome" and "outcome" in v.view.value
    assert len(stops) > 2 and stops == sorted(set(stops))
    for a, b in pairwise(stops):
        assert s.event(b) and not any(s.event(k) for k in range(a + 1, b))
        why, prev, cur = s.event(b), s.state(b - 1), s.state(b)
        if "bytes of" in why:
            assert prev["sites"] != cur["sites"]
        assert why in v.status.value or b != v.slider.value
    assert any("enters the int3 handler" in s.event(k) for k in stops)
    assert not v.jump_to_event() and v.slider.value == len(s) - 1


def test_the_tracer_registration_drops_nothing_with_two_cpus_either():
    """The 1-CPU rule (function_enabled, docs/KERNEL.md §1) holds in the model checker too:
    under skip, a trapped call misses the tracer being registered (no drop) but misses a
    tracer already running (a drop)."""
    from workbench.emulate.mc.check import check, outcome_rows
    from workbench.emulate.mc.config import McConfig

    def drops(scenario):
        cfg = McConfig(scenario, "skip", "v5.3", None, (("do_IRQ",), ("schedule",))).checked()
        rows = [r for r in outcome_rows(check(cfg)) if r["trapped"]]
        assert rows  # some execution traps
        return sum(r["dropped_tracer"] for r in rows), sum(r["violation"] for r in rows)

    tracer, violations = drops("seed")
    assert tracer == 0 and violations > 0
    tracer, _ = drops("tracer_add_livepatch")
    assert tracer > 0


# the only behaviour two calling CPUs reach that neither call reaches alone: under spin, a
# process-context call trapped on a site spins for good once the other CPU's do_IRQ (IF clear)
# has stopped the patch in the deadlock of docs/KERNEL.md
SPIN_DRAGGED = ("schedule", True, "none", 0, False, False, True)


@pytest.mark.parametrize("arch,strategy,entry,multi_cpu", [
    ("i386", "spin", "v5.3", [SPIN_DRAGGED]), ("i386", "emulate_new", "v5.3", []), ("i386", "emulate_new", "v5.1", []),
    ("x86_64", "skip", "v5.2", []), ("x86_64", "emulate_regs_caller", "v5.2", []),
    ("x86_64", "emulate_regs_caller", "v5.1", []), ("x86_64", "spin", "v5.2", [SPIN_DRAGGED])])
def test_two_calling_cpus_reach_every_behaviour_of_the_one_cpu_table(arch, strategy, entry, multi_cpu):
    """The model checker and the 1-CPU exhaustive exploration are two engines over the same
    machine code: every per-call behaviour the timed 1-CPU table reaches (spin's deadlock in
    do_IRQ, which runs with IF clear, included) is reached with two calling CPUs, which add
    exactly the listed multi-CPU-only behaviours to what each call reaches alone."""
    from workbench.emulate.explore import explore
    from workbench.emulate.mc.experiment import BEHAVIOUR, behaviours, multi_cpu_only

    calls, _ = explore("seed", strategies=strategy, entry=entry, mode="exhaustive", functions=["do_IRQ", "schedule"],
                       progress=False, arch=arch)
    two = check_all([dict(arch=arch, strategy=strategy, entry=entry, calls=[["do_IRQ"], ["schedule"]])], cache=False,
                    progress=False)
    alone = check_all([dict(arch=arch, strategy=strategy, entry=entry, calls=[[f]]) for f in ("do_IRQ", "schedule")],
                      cache=False, progress=False)
    assert multi_cpu_only(calls, two).empty  # nothing of the 1-CPU table is missing with two CPUs
    assert multi_cpu_only(alone, two).empty
    only = multi_cpu_only(two, alone)
    assert [tuple(r) for r in only[BEHAVIOUR].itertuples(index=False)] == multi_cpu
    assert len(behaviours(two)) > len(only)


def _seed_x86_64(strategy, entry):
    """Outcome rows of the x86_64 seed (do_IRQ, live-patched, against schedule) on two calling CPUs."""
    cfg = McConfig("seed", strategy, entry, None, default_calls(2, arch="x86_64"), arch="x86_64")
    res = check(cfg)
    return res, outcome_rows(res)


def test_x86_64_seed_emulating_the_regs_caller_has_no_bad_outcome_and_skip_loses_the_livepatch():
    """On the x86_64 machine (entry_64.S, per-ops trampolines), with v5.2's gap: every interleaving of
    emulate_regs_caller (9e298e860408) runs the live patch and crashes nothing, while skip (before it)
    lets a trapped do_IRQ run its old body (a violation) in some interleaving; with the v5.1 entry the
    emulated call's push lands on the trap frame and iretq faults on the SS it finds there."""
    assert default_calls(2, arch="x86_64") == (("do_IRQ",), ("schedule",))
    res, rows = _seed_x86_64("emulate_regs_caller", "v5.2")
    assert rows and all(r["arch"] == "x86_64" and r["entry"] == "v5.2" for r in rows)
    assert not any(bad_outcome(o) for o in res["outcomes"])
    lp = [r for r in rows if r["function"] == "do_IRQ"]
    assert all(r["body"] == "new" and r["livepatch_ran"] and not r["violation"] for r in lp)
    assert any(r["trapped"] for r in lp)
    res, rows = _seed_x86_64("skip", "v5.2")
    assert not any(bad_outcome(o) for o in res["outcomes"])
    lost = [r for r in rows if r["function"] == "do_IRQ" and r["trapped"]]
    assert lost and all(r["body"] == "old" and not r["livepatch_ran"] and r["violation"] == 1 for r in lost)
    res, rows = _seed_x86_64("emulate_regs_caller", "v5.1")
    crashed = [r for r in rows if r["crash"]]
    assert crashed and all("general protection fault at iretq" in r["crash_reason"] for r in crashed)


def test_an_x86_64_counterexample_file_carries_its_arch_and_replays_on_that_machine(tmp_path):
    res = check(McConfig("seed", "emulate_regs_caller", "v5.1", None, default_calls(2, arch="x86_64"),
                         arch="x86_64"), out_dir=tmp_path)
    assert res["files"]
    doc = json.loads(open(res["files"][0]).read())
    assert doc["config"]["arch"] == "x86_64" and doc["config"]["entry"] == "v5.1"
    cfg, sched, expect = load_schedule(res["files"][0])
    assert cfg.arch == "x86_64"
    steps = list(replay_steps(cfg, sched, expect))
    assert "general protection fault at iretq" in steps[-1]["outcome"]
    regs = [c["pt_regs"] for s in steps for c in s["cpus"] if "pt_regs" in c]
    assert regs and "ss" in regs[0] and "orig_ax" in regs[0]  # x86_64's struct pt_regs
    # the same schedule on the i386 machine does not fit
    with pytest.raises(ConfigError, match="schedule file"):
        list(replay_steps(McConfig(**{**cfg.__dict__, "arch": "i386", "entry": None}), sched, expect))


def test_a_file_naming_the_poke_method_protocol_still_loads_and_replays(tmp_path):
    res = check(McConfig(**TINY, poke_method="no_sync"), out_dir=tmp_path)
    doc = json.loads(open(res["files"][0]).read())
    assert doc["config"]["poke_method"] == "no_sync" and "protocol" not in doc["config"]  # written: the new key
    from workbench.emulate.mc import schedule

    body = {k: v for k, v in doc.items() if k != "sha256"}
    body["config"] = {("protocol" if k == "poke_method" else k): v for k, v in body["config"].items()}
    old = tmp_path / "old.json"  # as the model checker wrote it before the rename
    old.write_text(json.dumps({**body, "sha256": schedule._digest(body)}))
    cfg, sched, expect = load_schedule(old)
    assert cfg == load_schedule(res["files"][0])[0] and cfg.poke_method == "no_sync"
    assert list(replay_steps(cfg, sched, expect))[-1]["outcome"] == expect
    r = subprocess.run([sys.executable, "-m", "workbench", "replay", str(old)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert ", poke method no_sync, " in r.stdout.splitlines()[0] and r.stdout.splitlines()[-1] == f"outcome: {expect}"
    again = tmp_path / "again.json"  # saved again: the new key only
    save_schedule(again, cfg, sched, expect)
    assert json.loads(again.read_text())["config"]["poke_method"] == "no_sync"
    assert "protocol" not in json.loads(again.read_text())["config"]
    body["config"]["poke_method"] = "no_sync"  # both names: refused, not guessed
    both = tmp_path / "both.json"
    both.write_text(json.dumps({**body, "sha256": schedule._digest(body)}))
    with pytest.raises(ConfigError, match="config.protocol is the old name of config.poke_method"):
        load_schedule(both)


def test_a_file_without_an_arch_is_an_i386_file(tmp_path):
    res = check(McConfig(**TINY, poke_method="no_sync"), out_dir=tmp_path)
    doc = json.loads(open(res["files"][0]).read())
    assert doc["config"]["arch"] == "i386"
    from workbench.emulate.mc import schedule

    body = {k: v for k, v in doc.items() if k != "sha256"}
    del body["config"]["arch"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**body, "sha256": schedule._digest(body)}))
    cfg, sched, expect = load_schedule(old)
    assert cfg.arch == "i386" and list(replay_steps(cfg, sched, expect))[-1]["outcome"] == expect


def test_a_scenario_or_entry_the_arch_cannot_have_is_refused_by_the_model_checker(tmp_path):
    lp = tmp_path / "lp386.toml"  # a livepatch that is not the mail's i386 sketch: HAVE_LIVEPATCH is x86_64's
    lp.write_text('[ops.lp]\nkind = "livepatch"\nfunctions = ["do_IRQ"]\n[transition]\nbefore = []\nafter = ["lp"]\n')
    with pytest.raises(ConfigError, match="cannot run on arch i386"):
        McSystem(McConfig(str(lp), calls=(("do_IRQ",),)))
    assert McSystem(McConfig(str(lp), calls=(("do_IRQ",),), arch="x86_64")).config.entry == "v5.2"
    with pytest.raises(ConfigError, match="entry: unknown value 'v5.3'"):
        McConfig(entry="v5.3", arch="x86_64").checked()
    with pytest.raises(ConfigError, match="arch"):
        McConfig(arch="arm64").checked()
