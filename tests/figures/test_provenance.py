"""Every output of the figures job carries its provenance and units through a pandas round trip.

One small quick run (a reduced grid) is written to a temporary directory;
each Parquet, CSV and figure JSON is read back with pandas and must name
the code version, scenario, entry, seed, grid and quick/full, keep every
float bit for bit, and name one time unit per column.
"""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.base.errors import ConfigError
from workbench.base.provenance import (PROVENANCE_COLUMNS, provenance, read_provenance, stamp, time_unit,
                                       units)
from workbench.base.version import code_version
from workbench.emulate.scenario import scenario_names
from workbench.figures import job as figures
from workbench.figures import plots
from workbench.sweep.engine import save_frame

# about 25 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(25)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quick")
    small = {"cpus": [1, 24, 256], "sync_round_ns": [1e3, 1e7], "sites": [1, 56], "trials": 100}
    mp = pytest.MonkeyPatch()
    mp.setitem(figures.GRIDS, "quick", small)
    try:
        report = figures.regenerate(quick=True, backend="serial", outdir=tmp / "out", progress=False,
                                    cache_root=tmp / "c", seed=11)
    finally:
        mp.undo()
    return tmp / "out", report


def test_every_output_of_a_quick_run_is_named_quick(quick_run):
    out, report = quick_run
    assert report.files
    for p in report.files:
        assert p.stem.endswith("_quick"), p.name
    # nothing under a published name
    assert not [p for p in out.rglob("*") if p.is_file() and "_quick" not in p.name]


def test_parquet_round_trip_keeps_provenance_in_metadata_and_columns(quick_run):
    out, _ = quick_run
    files = sorted((out / "sweeps").glob("*.parquet"))
    assert [p.stem for p in files] == ["arch_quick", "batching_quick", "cpus_quick", "heatmap_quick", "timing_quick"]
    for p in files:
        f = pd.read_parquet(p)
        prov = f.attrs["provenance"]  # from the schema metadata
        assert prov["run"] == "quick" and prov["seed"] == 11 and prov["code_version"] == code_version()
        assert prov["grid"] == p.stem.removesuffix("_quick")
        assert set(prov["scenario"].split("+")) <= set(scenario_names())
        # each arch its own latest entry: v5.3 on i386, v5.2 on x86_64; the arch sweep has both
        # arches, the drops sweeps each scenario on the arch whose real kernel has it (the seed's
        # livepatch on x86_64, the probe on i386), the batching sweep i386 alone
        both = p.stem != "batching_quick"
        assert prov["entry"] == ("v5.2+v5.3" if both else "v5.3"), (p.name, prov["entry"])
        assert set(f["arch"]) == ({"i386", "x86_64"} if both else {"i386"})
        if p.stem in ("cpus_quick", "timing_quick", "heatmap_quick"):
            assert set(zip(f["scenario"], f["arch"], f["entry"], strict=True)) == {("seed", "x86_64", "v5.2"),
                                                                     ("tracer_add_probe", "i386", "v5.3")}
        for col in PROVENANCE_COLUMNS:
            assert col in f.columns, (p.name, col)
        assert set(f["run"]) == {"quick"} and set(f["seed"]) == {11}
        assert f.attrs["units"]["patch_ns_mean"] == "ns"
        assert "zipf_s" not in f.attrs["units"]  # an exponent, not seconds


def test_csv_round_trip_has_provenance_columns_full_precision_and_one_unit_per_column(quick_run):
    out, _ = quick_run
    files = sorted((out / "summary").glob("*.csv"))
    assert len(files) == 9
    for p in files:
        f = pd.read_csv(p)
        prov = read_provenance(f)
        assert prov["run"] == "quick" and prov["code_version"] == code_version(), p.name
        assert prov["scenario"] != "-" and prov["grid"], p.name
        for col in f.columns:
            assert not col.endswith("_s") or col == "zipf_s", col
            assert not ("_ms" in col and "_ns" in col), col
    # no file mixes ms and ns: every time column is in ns
    for p in files:
        for col in pd.read_csv(p, nrows=1).columns:
            assert time_unit(col) in (None, "ns"), (p.name, col)
    # full precision: the CSV reads back the very floats of the sweep
    sweep = pd.read_parquet(out / "sweeps" / "cpus_quick.parquet")
    csv = pd.read_csv(out / "summary" / "drops_vs_cpus_quick.csv")
    for col in ("patch_ns_mean", "patch_ns_lo", "patch_ns_hi", "stall_ns_mean", "dropped_tracer_mean"):
        np.testing.assert_array_equal(csv[col].to_numpy(), sweep[col].to_numpy(), err_msg=col)
    assert csv["patch_ns_lo"].nunique() > 1 or len(csv) == 1
    trade = pd.read_csv(out / "summary" / "tradeoff_quick.csv")
    np.testing.assert_array_equal(trade["stall_cpu_ns"].to_numpy(), sweep["stall_ns_mean"].to_numpy())
    # the arch comparison: every row names its arch and the kernel it belongs to
    by_arch = pd.read_csv(out / "summary" / "drops_by_arch_quick.csv")
    assert read_provenance(by_arch)["grid"] == "arch"
    kernels = set(zip(by_arch["scenario"], by_arch["arch"], by_arch["kernel"], strict=True))
    assert kernels == {("seed", "i386", "i386 sketch"), ("seed", "x86_64", "real x86_64"),
                       ("tracer_add_livepatch", "i386", "i386 sketch"),
                       ("tracer_add_livepatch", "x86_64", "real x86_64"),
                       ("tracer_add_probe", "i386", "real i386"), ("tracer_add_probe", "x86_64", "real x86_64")}
    # the drops and trade-off tables: only kernels that exist, every row naming its arch
    for name in ("drops_vs_cpus", "drops_vs_timing", "heatmap_skip", "tradeoff"):
        f = pd.read_csv(out / "summary" / f"{name}_quick.csv")
        assert set(zip(f["scenario"], f["arch"], f["kernel"], strict=True)) == {("seed", "x86_64", "real x86_64"),
                                                                  ("tracer_add_probe", "i386", "real i386")}, name
    # the outcome tables: both arches, each with its own entries, every row naming its arch
    out_t = pd.read_csv(out / "summary" / "outcomes_quick.csv")
    assert set(zip(out_t["arch"], out_t["entry"], strict=True)) == {("i386", "v5.1"), ("i386", "v5.3"),
                                                                    ("x86_64", "v5.1"), ("x86_64", "v5.2")}
    assert set(out_t.loc[out_t["arch"] == "x86_64", "kernel"]) == {"real x86_64"}


def test_every_figure_has_a_caption_and_provenance_in_json_and_png(quick_run):
    out, _ = quick_run
    for spec in figures.FIGURES:
        meta = pd.read_json(out / "figures" / f"{spec.name}_quick.json", typ="series")
        assert meta["run"] == "quick" and meta["code_version"] == code_version()
        assert "quick grid" in meta["caption"] and meta["caption"].count("\n") == 0
        with Image.open(out / "figures" / f"{spec.name}_quick.png") as im:
            assert json.loads(im.info["provenance"])["figure"] == f"{spec.name}_quick"
            assert im.info["Description"] == meta["caption"]
    fig1 = pd.read_json(out / "figures" / "fig1_drops_vs_cpus_quick.json", typ="series")
    # the fixed conditions, read from the data: not the swept CPU count
    # two scenarios, one per panel (violations: seed; tracer drops: tracer running), each on
    # the arch whose real kernel has it and tagged with that kernel (docs/KERNEL.md §7, §17),
    # each arch with its own int3 entry
    assert "scenarios seed [real x86_64] + tracer_add_probe [real i386]" in fig1["caption"]
    assert "entry v5.3 (i386) + v5.2 (x86_64)" in fig1["caption"]
    assert "sketch" not in fig1["caption"]
    fig5 = pd.read_json(out / "figures" / "fig5_tradeoff_quick.json", typ="series")
    assert "scenario tracer_add_probe [real i386]" in fig5["caption"] and "seed" not in fig5["caption"].split(";")[0]
    fig7 = pd.read_json(out / "figures" / "fig7_outcomes_quick.json", typ="series")
    assert ("scenarios seed [i386 sketch, real x86_64] + tracer_add_probe [real i386, real x86_64]"
            in fig7["caption"])
    assert "sync round 337 µs" in fig1["caption"] and "CPUs" not in fig1["caption"].split("(24 CPUs)")[1]
    fig2 = pd.read_json(out / "figures" / "fig2_drops_vs_timing_quick.json", typ="series")
    assert "64 CPUs" in fig2["caption"] and "seed 11" in fig2["caption"]


def test_stamp_keeps_swept_columns_and_refuses_an_incomplete_record():
    f = pd.DataFrame({"scenario": ["seed", "seed_reverse"], "x_ns": [1.5, 2.5]})
    s = stamp(f, provenance(seed=3, grid="g", run="full", scenario=["seed", "seed_reverse"]))
    assert list(s["scenario"]) == ["seed", "seed_reverse"] and set(s["run"]) == {"full"}
    assert s.attrs["provenance"]["scenario"] == "seed+seed_reverse" and s.attrs["units"] == {"x_ns": "ns"}
    with pytest.raises(ConfigError, match="provenance: missing"):
        stamp(f, {"seed": 1})
    with pytest.raises(ConfigError, match="run"):
        provenance(seed=1, grid="g", run="draft")
    assert units(["a_ms", "b", "c_ns_mean", "zipf_s"]) == {"a_ms": "ms", "c_ns_mean": "ns"}


def test_save_frame_without_provenance_still_writes(tmp_path):
    f = pd.DataFrame({"a": [1.0]})
    back = pd.read_parquet(save_frame(f, tmp_path / "plain.parquet"))
    assert list(back.columns) == ["a"] and back.attrs == {}


def test_fig2_states_its_cpu_count_and_no_data_sits_above_the_top_label(quick_run):
    out, _ = quick_run
    frame = pd.read_parquet(out / "sweeps" / "timing_quick.parquet")
    fig = plots.drops(frame, x="sync_round_ns")
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        assert "(64 CPUs)" in ax.get_title()
        assert "24 CPUs" in ax.get_xlabel()  # the latency parameter's reference machine, said as such
        ticks = [t for t in ax.yaxis.get_majorticklocs() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        top = max(max(line.get_ydata()) for line in ax.lines)
        assert max(ticks) >= top, (ax.get_title(), max(ticks), top)


def test_fig5_shows_each_strategy_at_24_and_256_cpus_with_its_value(quick_run):
    out, _ = quick_run
    frame = pd.read_parquet(out / "sweeps" / "cpus_quick.parquet")
    frame = frame[frame["scenario"] == figures.TRADEOFF_SCENARIO]  # what the job draws fig5 from
    fig = plots.tradeoff(frame)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("24 CPUs" in t for t in titles) == 2 and sum("256 CPUs" in t for t in titles) == 2
    strategies = list(dict.fromkeys(frame["strategy"]))
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.texts]
        assert len(labels) == len(strategies)  # a value per strategy, zeros included
    # stall is split: spin and stop_machine wait, the others only run the handler
    stall_ax = fig.axes[0]
    hatched = [p for p in stall_ax.patches if p.get_hatch() and p.get_width() > 0]
    assert len(hatched) == sum(s in ("spin", "stop_machine") for s in strategies)
    assert plots.figure_check(fig) == []


def test_every_figure_labels_its_ticks_alike(quick_run):
    """1, 10, 1k, 1M everywhere: no figure falls back to matplotlib's 10^n mathtext."""
    out, _ = quick_run
    frames = {k: pd.read_parquet(out / "sweeps" / f"{k}_quick.parquet")
              for k in ("cpus", "timing", "heatmap", "batching", "arch")}
    for spec in figures.FIGURES:
        if spec.name == "fig7_outcomes":
            continue  # no numeric axes
        fig = figures._draw(spec.name, frames, {})
        fig.canvas.draw()
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                texts = [t.get_text() for t in axis.get_ticklabels(minor=False) + axis.get_ticklabels(minor=True)]
                assert not [t for t in texts if "$" in t or "^" in t], (spec.name, ax.get_title(), texts)


def test_every_data_directory_says_its_columns_units(quick_run):
    """Each output directory carries the vocabulary entry of every column its files have."""
    out, _ = quick_run
    for sub, read in (("sweeps", pd.read_parquet), ("summary", pd.read_csv)):
        rows = json.loads((out / sub / "columns_quick.json").read_text())
        described = {r["column"]: r for r in rows}
        assert all(r["unit"] and r["meaning"] for r in rows)
        for f in (out / sub).glob("*_quick.parquet" if sub == "sweeps" else "*_quick.csv"):
            missing = set(read(f).columns) - set(described)
            assert not missing, (f.name, missing)
    assert described["stall_cpu_ns"]["unit"] == "ns"
