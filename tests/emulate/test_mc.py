"""Model checking with several calling CPUs: exhaustiveness against naive enumeration,
the known multi-CPU bugs found by negative controls and not by the fixes,
counterexample files, backends and resume, bad input."""

import collections
import json
import subprocess
import sys

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.mc.check import check
from workbench.sweep.mc import check_all
from workbench.emulate.mc.dpor import linearizations, naive, source_dpor
from workbench.emulate.mc.schedule import load_schedule, replay_steps, save_schedule
from workbench.emulate.mc.system import McConfig, McSystem, dependent

# one site (schedule's), both CPUs call it: small enough to enumerate every interleaving
TINY = dict(calls=(("schedule",), ("schedule",)), items=("sites",))


def _crashes(result):
    return {c[5] for o in result["outcomes"] for calls in o[0] for c in calls if c[5]}


def _deadlocks(result):
    return [o for o in result["outcomes"] if o[1]]


@pytest.mark.parametrize("kw", [
    dict(TINY, protocol="no_sync"),  # two callers, every clear and text store racing
    dict(calls=(("schedule",),), items=("sites",)),  # one caller, all four IPI rounds
    dict(calls=(("schedule",),), items=("sites",), strategy="spin", protocol="no_sync"),
])
def test_reduced_exploration_reaches_every_outcome_with_the_naive_weights(kw):
    system = McSystem(McConfig(**kw))
    reduced, weights = collections.Counter(), collections.Counter()

    def visit(ex):
        reduced[ex.outcome] += 1
        weights[ex.outcome] += linearizations(ex.events, dependent)

    stats = source_dpor(system, dependent, visit)
    full = collections.Counter()
    n = naive(system, lambda ex: full.update([ex.outcome]))
    assert set(reduced) == set(full)
    # each explored execution stands for its linearizations: together exactly the naive interleavings
    assert weights == full
    assert sum(weights.values()) == n
    assert stats.executions < n  # a real reduction (factor printed by benchmarks/bench_mc.py)


def test_null_vec_found_only_without_a_sync_between_the_clears():
    null = "NULL pointer dereference"
    racy = check(McConfig(**TINY, protocol="racy_clear_nosync3", coherent_fetch=True))
    assert any(null in c for c in _crashes(racy))
    fixed = check(McConfig(**TINY, protocol="fixed_clear_nosync3", coherent_fetch=True))
    assert not any(null in c for c in _crashes(fixed))
    # with ftrace's third sync the race cannot happen even with the racy clears:
    # no CPU can be in the handler (IF clear) once that sync has completed
    for proto in ("racy_clear", "breakpoint"):
        assert not _crashes(check(McConfig(**TINY, protocol=proto))), proto


def test_a_handler_waiting_with_interrupts_off_deadlocks_the_sync():
    bad = check(McConfig(**TINY, handler="irqoff_wait"))
    dl = _deadlocks(bad)
    assert dl
    # spin returns to the int3 with interrupts as they were, so the IPI gets through
    assert not _deadlocks(check(McConfig(**TINY, strategy="spin")))


def test_missing_syncs_with_two_callers_crash_and_the_protocol_does_not():
    assert _crashes(check(McConfig(**TINY, protocol="no_sync")))
    assert not _crashes(check(McConfig(**TINY)))


def test_counterexample_file_replays_step_by_step(tmp_path):
    res = check(McConfig(**TINY, protocol="racy_clear_nosync3", coherent_fetch=True), out_dir=tmp_path)
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
    res = check(McConfig(**TINY, protocol="no_sync"), out_dir=tmp_path)
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
    r = subprocess.run([sys.executable, "-m", "workbench", "explore", "--mode", "exhaustive", "--cpus", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cpus" in r.stderr
    with pytest.raises(ConfigError):
        McConfig(calls=(("schedule",),) * 4).checked()


def test_same_results_on_every_backend_and_after_a_rerun(tmp_path):
    pts = [dict(strategy=s, calls=[["schedule"], ["schedule"]], items=["sites"], protocol="no_sync")
           for s in ("emulate_new", "skip")]
    # a run killed after its first work item left that item in the cache
    partial = check_all(pts[:1], backend="serial", cache_root=tmp_path, progress=False)
    assert partial.attrs["sweep"]["computed"] == 1
    serial = check_all(pts, backend="serial", cache=False, progress=False)
    local = check_all(pts, backend="local", jobs=2, cache_root=tmp_path, progress=False)
    assert local.attrs["sweep"]["cached"] == 1 and local.attrs["sweep"]["computed"] == 1
    dask = check_all(pts, backend="dask", jobs=2, cache=False, progress=False)
    again = check_all(pts, backend="serial", cache_root=tmp_path, progress=False)  # resumed from the cache
    assert again.attrs["sweep"]["cached"] == len(pts)
    for other in (local, dask, again):
        assert serial.equals(other)


def test_step_viewer_opens_a_counterexample(tmp_path):
    from workbench.ui.schedule_viewer import ScheduleViewer

    res = check(McConfig(**TINY, handler="irqoff_wait"), out_dir=tmp_path)
    v = ScheduleViewer(res["files"][0])
    v.slider.value = v.slider.max
    assert "DEADLOCK" in v.view.value
    v.slider.value = 1
    assert "C0 at" in v.view.value


def test_the_tracer_registration_drops_nothing_with_two_cpus_either():
    """The 1-CPU rule (function_enabled, docs/KERNEL.md §1) holds in the model checker too:
    under skip, a trapped call misses the tracer being registered (no drop) but misses a
    tracer already running (a drop)."""
    from workbench.emulate.mc.check import check, outcome_rows
    from workbench.emulate.mc.system import McConfig

    def drops(scenario):
        cfg = McConfig(scenario, "skip", "v5.3", None, (("do_IRQ",), ("schedule",))).checked()
        rows = [r for r in outcome_rows(check(cfg)) if r["trapped"]]
        assert rows  # some execution traps
        return sum(r["dropped_tracer"] for r in rows), sum(r["violation"] for r in rows)

    tracer, violations = drops("seed")
    assert tracer == 0 and violations > 0
    tracer, _ = drops("tracer_add_livepatch")
    assert tracer > 0
