"""Tests of workbench.sweep.engine: grids, validation, seeds, backends, the cache, resuming."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.sweep import engine as sw
from workbench.base.errors import ConfigError
from workbench.race.outcomes import load_outcomes
from workbench.race.simulator import simulate
from workbench.race.experiment import RACE, RaceExperiment, long_metrics, race_grid
from workbench.race.timing import Timing
from workbench.sweep.engine import FunctionExperiment, Grid, SweepCache, parse_assignments, point_stream, sweep
from workbench.sweep.backends import dask_client

ROOT = Path(__file__).resolve().parents[2]

# a tiny experiment whose calls we can count; module-level so workers can import it
CALLS = []


def _square(params, seed, stream, context):
    CALLS.append(params["x"])
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
    return {"y": params["x"] ** 2, "noise": float(rng.random())}


SQUARE = FunctionExperiment("square", _square, {"x": 0, "k": 1})

SMALL = dict(strategy=["skip", "emulate_old"], cpus=[1, 16, 256], trials=300)


def entries(root):
    return sorted(Path(root).rglob("*.json"))


# -- grids and validation -------------------------------------------------------------------------

def test_grid_is_the_product_in_order():
    g = Grid(a=[1, 2], b=["x", "y", "z"])
    assert len(g) == 6
    assert g.points()[:4] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "x"}]
    assert Grid(a=5).points() == [{"a": 5}]  # a scalar is one value
    joined = Grid.concat([Grid(a=[1]), Grid(a=[2], b=3)])
    assert joined.points() == [{"a": 1}, {"a": 2, "b": 3}]


@pytest.mark.parametrize("make, needle", [
    (lambda: race_grid(cpus=[]), "cpus: empty range"),
    (lambda: race_grid(cpu=[1, 2]), "cpu: unknown sweep parameter"),
    (lambda: Grid(cpus=range(0)), "cpus: empty range"),
    (lambda: parse_assignments(["cpus="], RACE), "cpus: empty range"),
    (lambda: parse_assignments(["nonsense=1"], RACE), "nonsense: unknown sweep parameter"),
    (lambda: parse_assignments(["cpus"], RACE), "grid: expected NAME=V1"),
])
def test_bad_grids_fail_at_once_with_one_line(make, needle):
    with pytest.raises(ConfigError) as e:
        make()
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("grid, needle", [
    (Grid(cpu=[1, 2]), "cpu: unknown sweep parameter for race"),
    (race_grid(cpus=[1, 2, 0]), "cpus: 0 is outside the valid range [1, 65536]"),
    (race_grid(strategy=["skip", "jump"]), "strategy: unknown value 'jump'"),
    (race_grid(outcomes="maybe"), "outcomes: unknown value 'maybe'"),
    (race_grid(trials=1), "trials: 1 is outside"),
    (race_grid(sync_round_ns=-5.0), "sync_round_ns"),
    ([], "grid: empty range"),
])
def test_bad_points_fail_before_any_work(grid, needle, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(RaceExperiment, "prepare", boom)
    monkeypatch.setattr(RaceExperiment, "run", boom)
    with pytest.raises(ConfigError) as e:
        sweep(grid, RACE, backend="serial", cache_root=tmp_path, progress=False)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert entries(tmp_path) == []


def test_bad_sweep_settings():
    for kw, needle in ((dict(backend="cloud"), "backend: unknown value"), (dict(jobs=0), "jobs"),
                       (dict(chunk_size=0), "chunk_size"), (dict(seed=-1), "seed"),
                       (dict(scheduler="tcp://x:1"), "scheduler: a scheduler address needs backend 'dask'")):
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
            sweep(Grid(x=[1]), SQUARE, progress=False, cache=False, **kw)


def test_cli_refuses_two_backends(capsys):
    from workbench.ui.cli import main

    assert main(["figures", "--serial", "--dask", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: backend:") and "\n" not in err


def test_normalize_fills_defaults_so_equal_points_share_a_key():
    a = RACE.normalize({"strategy": "skip"})
    b = RACE.normalize({"strategy": "skip", "batching": "batched", "cpus": 64.0, "sync_round_ns": None,
                        "hot": {"schedule": 5000, "__migrate_task": 20, "do_IRQ": 1000}})
    c = SweepCache("/nonexistent", version="v")
    assert c.key("race", a, 0) != c.key("race", RACE.normalize({"strategy": "skip", "cpus": 65}), 0)
    assert a["batching"] == "batched" and a["cpus"] == 64 and isinstance(a["cpus"], int)
    assert point_stream("race", a) == point_stream("race", {**a, "hot": dict(reversed(list(a["hot"].items())))})
    assert c.key("race", a, 0) != c.key("race", a, 1)  # the seed is part of the key
    assert b["sync_round_ns"] == pytest.approx(a["sync_round_ns"])


def test_for_round_hits_the_round_and_keeps_writes():
    base = Timing()
    for target in (1e3, 3.37e5, 1e7):
        t = Timing.for_round(target)
        assert t.round_moments(24)[0] == pytest.approx(target, rel=1e-12)
        assert t.write_ns == base.write_ns
        # floor and tail scaled together: the shape of the model is kept
        assert t.ipi_base_ns / t.irq_off_scale_ns == pytest.approx(base.ipi_base_ns / base.irq_off_scale_ns)
    assert Timing.for_round(None) == base
    with pytest.raises(ConfigError, match="sync_round_ns"):
        Timing.for_round(0.0)


# -- what a point computes -----------------------------------------------------------------------------

def test_a_point_is_the_race_simulator_with_its_spawned_stream(tmp_path):
    frame = sweep(race_grid(strategy="skip", cpus=[4, 32], trials=400), seed=7, backend="serial",
                  cache_root=tmp_path, progress=False)
    outcomes = load_outcomes("seed", "v5.3")
    for _, row in frame.iterrows():
        p = RACE.normalize({"strategy": "skip", "cpus": int(row.cpus), "trials": 400})
        stream = point_stream("race", RACE.stream_params(p))
        direct = simulate(RACE.config(p), outcomes, 400, 7, stream=stream).iloc[0]
        assert row.stream == stream
        for m in ("trapped", "violations", "dropped_tracer", "stall_ns", "patch_ns"):
            assert row[f"{m}_mean"] == direct[f"{m}_mean"]
            assert row[f"{m}_cf"] == direct[f"{m}_cf"]
    # the parameters lead the columns, the measurements follow
    assert list(frame.columns[:6]) == ["arch", "scenario", "strategy", "batching", "entry", "cpus"]
    assert frame["violations_mean"].iloc[1] > frame["violations_mean"].iloc[0] > 0


def test_outcomes_none_counts_traps_only(tmp_path):
    f = sweep(race_grid(strategy="skip", cpus=8, trials=200, outcomes=["none", "emulator"]), backend="serial",
              cache_root=tmp_path, progress=False)
    none, emu = f.iloc[0], f.iloc[1]
    assert np.isnan(none.violations_mean) and np.isnan(none.dropped_tracer_cf)
    assert none.trapped_cf == emu.trapped_cf > 0 and emu.violations_mean > 0


def test_seeds_do_not_depend_on_order_chunks_or_grid(tmp_path):
    g = Grid(x=list(range(12)))
    a = sweep(g, SQUARE, backend="serial", cache=False, progress=False, chunk_size=1, seed=3)
    b = sweep(Grid(x=list(range(11, -1, -1))), SQUARE, backend="serial", cache=False, progress=False,
              chunk_size=5, seed=3)
    b = b.sort_values("x").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # the same point inside another grid draws the same numbers
    c = sweep(Grid(x=[4], k=1), SQUARE, backend="serial", cache=False, progress=False, seed=3)
    assert c.noise.iloc[0] == a.noise.iloc[4]
    d = sweep(g, SQUARE, backend="serial", cache=False, progress=False, seed=4)
    assert not np.allclose(a.noise, d.noise)
    assert len(set(a.noise)) == 12  # every point its own stream


def test_local_processes_and_dask_localcluster_give_identical_frames(tmp_path):
    grid = race_grid(**SMALL)
    serial = sweep(grid, backend="serial", cache=False, progress=False, seed=11)
    local = sweep(grid, backend="local", jobs=2, chunk_size=2, cache=False, progress=False, seed=11,
                  parallel_above=0)  # the pool even for cheap points
    with dask_client(jobs=2, processes=False) as client:
        dask = sweep(grid, backend="dask", client=client, chunk_size=1, cache=False, progress=False, seed=11)
    pd.testing.assert_frame_equal(serial, local, check_exact=True)
    pd.testing.assert_frame_equal(serial, dask, check_exact=True)
    assert local.attrs["sweep"]["backend"] == "local" and dask.attrs["sweep"]["backend"] == "dask"
    assert serial["violations_mean"].notna().all() and (serial["trapped_mean"] > 0).all()


# -- the cache --------------------------------------------------------------------------------------

def test_second_run_is_served_from_the_cache_and_identical(tmp_path):
    grid = race_grid(**SMALL)
    first = sweep(grid, backend="serial", cache_root=tmp_path, progress=False)
    assert first.attrs["sweep"]["computed"] == 6 and len(entries(tmp_path)) == 6
    second = sweep(grid, backend="serial", cache_root=tmp_path, progress=False)
    assert (second.attrs["sweep"]["cached"], second.attrs["sweep"]["computed"]) == (6, 0)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    # a bigger grid reuses what is there
    third = sweep(race_grid(strategy=["skip", "emulate_old"], cpus=[1, 16, 64, 256], trials=300),
                  backend="serial", cache_root=tmp_path, progress=False)
    assert (third.attrs["sweep"]["cached"], third.attrs["sweep"]["computed"]) == (6, 2)


def test_a_warm_sweep_is_served_whole_with_the_frame_and_bytes_of_its_points(tmp_path, monkeypatch):
    grid = race_grid(**SMALL)
    saved = tmp_path / "out" / "a.parquet"
    first = sweep(grid, backend="serial", cache_root=tmp_path, progress=False, save=saved)
    cold = saved.read_bytes()
    saved.unlink()
    # served whole: neither normalised nor read point by point again
    monkeypatch.setattr(RACE, "normalize", lambda p: pytest.fail("a warm sweep normalised its points"))
    second = sweep(grid, backend="serial", cache_root=tmp_path, progress=False, save=saved)
    monkeypatch.undo()
    assert second.attrs["sweep"] == first.attrs["sweep"] | {"cached": 6, "computed": 0}
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert list(first.dtypes) == list(second.dtypes) and first.attrs == {**second.attrs, "sweep": first.attrs["sweep"]}
    assert saved.read_bytes() == cold
    # a point entry that is not the file the whole entry was made from: read point by point, found, healed
    victim = entries(tmp_path)[1]
    data = victim.read_bytes()
    i = data.index(b'"rows":') + 9
    victim.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:])
    third = sweep(grid, backend="serial", cache_root=tmp_path, progress=False, save=saved)
    assert (third.attrs["sweep"]["corrupt"], third.attrs["sweep"]["computed"]) == (1, 1)
    pd.testing.assert_frame_equal(first, third, check_exact=True)
    # a point entry gone: computed again, not served from the whole entry
    entries(tmp_path)[4].unlink()
    fourth = sweep(grid, backend="serial", cache_root=tmp_path, progress=False, save=saved)
    assert fourth.attrs["sweep"]["computed"] == 1
    pd.testing.assert_frame_equal(first, fourth, check_exact=True)


def test_a_new_code_version_misses_the_cache(tmp_path, monkeypatch):
    sweep(Grid(x=[1, 2]), SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    monkeypatch.setattr("workbench.base.version.code_version", lambda: "another-version")
    again = sweep(Grid(x=[1, 2]), SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    assert again.attrs["sweep"]["computed"] == 2
    assert (tmp_path / "another-version").is_dir()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "other_key"])
def test_a_corrupted_entry_is_detected_and_recomputed(damage, tmp_path):
    grid = Grid(x=list(range(5)))
    first = sweep(grid, SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    victim = entries(tmp_path)[2]
    data = victim.read_bytes()
    if damage == "flip":  # one bit of the payload: only the checksum can tell
        i = data.index(b'"y":') + 4
        data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = os.urandom(64)
    elif damage == "empty":
        data = b""
    else:  # a valid entry stored under the wrong name
        data = entries(tmp_path)[3].read_bytes()
    victim.write_bytes(data)
    CALLS.clear()
    second = sweep(grid, SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    assert second.attrs["sweep"]["corrupt"] == 1 and second.attrs["sweep"]["computed"] == 1
    assert len(CALLS) == 1
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    third = sweep(grid, SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    assert third.attrs["sweep"]["cached"] == 5


def test_an_interrupted_sweep_keeps_finished_points(tmp_path):
    def flaky(params, seed, stream, context):
        if params["x"] == 4:
            raise KeyboardInterrupt
        return _square(params, seed, stream, context)

    grid = Grid(x=list(range(10)))
    with pytest.raises(KeyboardInterrupt):
        sweep(grid, FunctionExperiment("square", flaky, {"x": 0, "k": 1}), backend="serial",
              cache_root=tmp_path, progress=False)
    assert len(entries(tmp_path)) == 4
    CALLS.clear()
    done = sweep(grid, SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    assert sorted(CALLS) == list(range(4, 10))
    assert done.attrs["sweep"]["cached"] == 4 and list(done.y) == [x * x for x in range(10)]


KILLED = textwrap.dedent("""
    import sys, time
    from workbench.sweep.engine import FunctionExperiment, Grid, sweep

    def slow(params, seed, stream, context):
        time.sleep(0.15)
        return {"y": params["x"] ** 2}

    sweep(Grid(x=list(range(40))), FunctionExperiment("slow", slow, {"x": 0}), backend="serial",
          cache_root=sys.argv[1], progress=False)
""")


def test_killing_a_sweep_half_way_and_rerunning_computes_only_the_missing_points(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)], cwd=ROOT)
    try:
        deadline = time.time() + 60
        while len(entries(tmp_path)) < 10 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no flush: as hard as it gets
    finally:
        proc.wait()
    kept = len(entries(tmp_path))
    assert 10 <= kept < 40, kept
    ran = []

    def slow(params, seed, stream, context):
        ran.append(params["x"])
        return {"y": params["x"] ** 2}

    frame = sweep(Grid(x=list(range(40))), FunctionExperiment("slow", slow, {"x": 0}), backend="serial",
                  cache_root=tmp_path, progress=False)
    s = frame.attrs["sweep"]
    assert (s["cached"], s["computed"], s["corrupt"]) == (kept, 40 - kept, 0)
    assert len(ran) == 40 - kept and sorted(ran) == list(range(kept, 40))  # serial: a prefix was done
    assert list(frame.y) == [x * x for x in range(40)]


# -- results on disk ----------------------------------------------------------------------------------

def test_save_and_load_parquet(tmp_path):
    f = sweep(Grid(x=[1, 2, 3]), SQUARE, backend="serial", cache=False, progress=False,
              save=tmp_path / "squares.parquet")
    back = sw.load_frame(tmp_path / "squares.parquet")
    pd.testing.assert_frame_equal(f, back, check_exact=True)
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ConfigError, match="no saved sweep"):
        sw.load_frame(tmp_path / "missing.parquet")


def test_long_metrics_has_one_row_per_point_and_metric(tmp_path):
    f = sweep(race_grid(strategy="stop_machine", cpus=[2, 4], trials=50), backend="serial",
              cache_root=tmp_path, progress=False)
    long = long_metrics(f, ["patch_ns", "stall_ns"])
    assert len(long) == 4 and set(long.metric) == {"patch_ns", "stall_ns"}
    row = long[(long.metric == "stall_ns") & (long.cpus == 4)].iloc[0]
    assert row["mean"] == f[f.cpus == 4].stall_ns_mean.iloc[0]


def test_parse_assignments_types_and_log_ranges():
    g = parse_assignments(["cpus=1,4", "strategy=skip", "trampolines=false", "sync_round_ns=1e3:1e7:5"], RACE)
    assert g.axes["cpus"] == [1, 4] and g.axes["strategy"] == ["skip"] and g.axes["trampolines"] == [False]
    assert g.axes["sync_round_ns"] == pytest.approx([1e3, 1e4, 1e5, 1e6, 1e7])


def test_a_point_listed_twice_is_computed_once(tmp_path):
    CALLS.clear()
    f = sweep(Grid.concat([Grid(x=[1, 2]), Grid(x=[2, 3])]), SQUARE, backend="serial", cache_root=tmp_path,
              progress=False)
    assert sorted(CALLS) == [1, 2, 3] and list(f.y) == [1, 4, 4, 9]
    assert f.noise.iloc[1] == f.noise.iloc[2]
    assert (f.attrs["sweep"]["computed"], f.attrs["sweep"]["cached"]) == (3, 0)


def test_the_engine_holds_no_experiment_of_its_own():
    with pytest.raises(ConfigError, match="experiment: this grid names no experiment"):
        sweep(Grid(x=[1]), backend="serial", cache=False, progress=False)
    assert race_grid(cpus=[1, 2]).experiment is RACE
    assert Grid.concat([race_grid(cpus=1), race_grid(cpus=2)]).experiment is RACE
    assert Grid.concat([race_grid(cpus=1), Grid(x=[1])]).experiment is None
    code = "import workbench.race.experiment as e; print(e.race_grid(cpus=[1, 2]).points())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[{'cpus': 1}, {'cpus': 2}]"


def _nap(params, seed, stream, context):
    time.sleep(0.15)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
    return {"y": params["x"] * params["k"], "noise": float(rng.random())}


def _short_nap(params, seed, stream, context):
    time.sleep(0.02)  # a race point's time: 15-40 ms
    return {"y": params["x"]}


def test_local_sends_points_as_long_as_race_points_to_the_pool_when_there_is_enough_work(monkeypatch):
    """Before, a point under 0.1 s kept the whole sweep in-process, however many points: the figures
    job's 706 race points ran on one core (30.7 s) while the pool takes 15.8 s on two."""
    monkeypatch.setattr(sw, "PARALLEL_MIN_SECONDS", 0.0)  # enough work, whatever the grid's size
    naps = FunctionExperiment("short nap", _short_nap, {"x": 0})
    frame = sweep(Grid(x=list(range(6))), naps, backend="local", jobs=2, chunk_size=1, cache=False,
                  progress=False, seed=5)
    assert frame.attrs["sweep"]["ran"] == "parallel"
    assert list(frame["y"]) == list(range(6))


def test_local_runs_cheap_points_serially_and_costly_ones_in_the_pool(monkeypatch):
    cheap = sweep(Grid(x=list(range(6))), SQUARE, backend="local", jobs=2, cache=False, progress=False, seed=5)
    assert cheap.attrs["sweep"]["ran"] == "serial"
    monkeypatch.setattr(sw, "PARALLEL_MIN_SECONDS", 0.0)
    slow = FunctionExperiment("nap", _nap, {"x": 0, "k": 1})
    costly = sweep(Grid(x=list(range(6))), slow, backend="local", jobs=2, chunk_size=1, cache=False,
                   progress=False, seed=5)
    assert costly.attrs["sweep"]["ran"] == "parallel"
    serial = sweep(Grid(x=list(range(6))), slow, backend="serial", cache=False, progress=False, seed=5)
    pd.testing.assert_frame_equal(costly, serial, check_exact=True)
