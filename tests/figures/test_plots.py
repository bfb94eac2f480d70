"""Tests of workbench.figures.plots and .outcome_plots and the figures job: content, labels, overlaps, byte-stable files."""

import re

import numpy as np
import pandas as pd
import pytest

from workbench.figures import job as figures
from workbench.figures import outcome_plots, plots
from workbench.base.errors import ConfigError
from workbench.base.vocabulary import FORMATS
from workbench.emulate.explore import load_outcome_table
from workbench.figures.job import batching_grid
from workbench.race.experiment import race_grid
from workbench.sweep.engine import sweep

STRATS = list(plots.STRATEGY_ORDER)

# about 40 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(40)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweepcache")
    run = dict(backend="serial", cache_root=root, progress=False)
    return {
        "cpus": sweep(race_grid(strategy=STRATS, cpus=[1, 16, 256], trials=200), **run),
        "timing": sweep(race_grid(strategy=STRATS, cpus=64, sync_round_ns=[1e3, 1e5, 1e7], trials=200), **run),
        "heatmap": sweep(race_grid(strategy="skip", cpus=[1, 16, 256], sync_round_ns=[1e3, 1e5, 1e7],
                                   trials=200), **run),
        "batching": sweep(batching_grid([1, 56, 1000], 200), **run),
    }


@pytest.fixture(scope="module")
def tables():
    return pd.concat([load_outcome_table("seed", e, progress=False) for e in ("v5.1", "v5.3")], ignore_index=True)


def all_figures(frames, tables):
    return {
        "drops_cpus": (plots.drops(frames["cpus"], x="cpus"), "wide"),
        "drops_timing": (plots.drops(frames["timing"], x="sync_round_ns"), "wide"),
        "heatmap": (plots.heatmap(frames["heatmap"]), "wide_tall"),
        "batching": (plots.batching(frames["batching"]), "grid"),
        "tradeoff": (plots.tradeoff(frames["cpus"]), "grid"),
        "closed": (plots.closed_vs_monte_carlo(pd.concat([frames["cpus"], frames["timing"]])), "wide_tall"),
        "outcomes": (outcome_plots.outcome_grid(tables), "grid"),
    }


def test_every_figure_has_labels_legends_no_overlaps_and_its_fixed_size(frames, tables):
    for name, (fig, size) in all_figures(frames, tables).items():
        assert plots.figure_check(fig) == [], name
        assert tuple(fig.get_size_inches()) == plots.SIZES[size], name
        for ax in fig.axes:
            if ax.get_label() != "<colorbar>" and (ax.lines or ax.collections):
                assert ax.get_xlabel() and ax.get_ylabel() or not ax.get_subplotspec().is_first_col(), name


def test_units_are_in_the_axis_labels(frames, tables):
    figs = all_figures(frames, tables)
    labels = [ax.get_xlabel() + " | " + ax.get_ylabel() for f, _ in figs.values() for ax in f.axes]
    joined = "\n".join(labels)
    assert "(µs)" in joined and "(ms)" in joined and "per patch" in joined and "CPUs" in joined


def test_drops_draws_one_line_per_strategy_with_its_style_and_bands(frames):
    fig = plots.drops(frames["cpus"], x="cpus")
    ax = fig.axes[0]
    assert len(ax.lines) == len(STRATS)
    for line, s in zip(ax.lines, STRATS, strict=True):
        colour, marker, label = plots.STRATEGY_STYLE[s]
        assert (line.get_color(), line.get_marker(), line.get_label()) == (colour, marker, label)
        assert list(line.get_xdata()) == [1, 16, 256]
    skip = frames["cpus"][frames["cpus"].strategy == "skip"].sort_values("cpus")
    assert np.allclose(ax.lines[0].get_ydata(), skip.violations_mean)
    # bands only for strategies that drop something: skip in the violations panel
    assert len(ax.collections) == 1
    # the four strategies that never violate coincide on 0: their markers are staggered
    zero = [ln.get_markevery() for ln, s in zip(ax.lines, STRATS, strict=True) if s != "skip"]
    assert sorted(m[0] for m in zero if m) == [0, 1, 2, 3, 4]
    assert fig.legends and len(fig.legends[0].get_texts()) == len(STRATS)


def test_palette_is_okabe_ito_with_distinct_colours_and_markers():
    colours = [c for c, _, _ in plots.STRATEGY_STYLE.values()]
    markers = [m for _, m, _ in plots.STRATEGY_STYLE.values()]
    assert len(set(colours)) == len(colours) and len(set(markers)) == len(markers)
    assert set(colours) <= set(plots.OKABE_ITO.values())


def test_batching_marks_bristot_and_counts_ipis(frames):
    fig = plots.batching(frames["batching"])
    ipi = fig.axes[0]
    stars = [ln for ln in ipi.lines if ln.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_ydata()) == [168, 3]
    b = frames["batching"]
    assert list(b[b.batching == "per_site"].sort_values("n_sites").ipis_mean) == [3, 168, 3000]
    assert set(b[b.batching == "batched"].ipis_mean) == {3}


def test_outcome_grid_cells_follow_the_table(tables):
    fig = outcome_plots.outcome_grid(tables)
    texts = [t.get_text() for t in fig.axes[0].texts]  # v5.1 panel, row-major
    # skip: the livepatched site violates; the ordinary one loses nothing, because the seed
    # registers the tracer (function_enabled = 0 while it does: docs/KERNEL.md)
    assert texts[0].startswith("violation") and texts[1].startswith("correct")
    assert texts[8].startswith("deadlock")  # spin in do_IRQ, interrupts off
    assert texts[2].startswith("crash")  # emulate ftrace_regs_caller under v5.1
    assert all(t.startswith("never traps") for t in texts[-2:])  # stop_machine
    v53 = [t.get_text() for t in fig.axes[1].texts]
    assert v53[2].startswith("correct") and v53[3].startswith("correct")
    assert outcome_plots.outcome_cell(None)[0] == "never traps"
    # with the tracer already running, skip's misses are real tracer drops
    both = pd.concat([tables, load_outcome_table("tracer_add_livepatch", "v5.3", progress=False)])
    fig2 = outcome_plots.outcome_grid(both, entries=("v5.3",))
    texts2 = [t.get_text() for t in fig2.axes[0].texts]  # 4 columns: seed x 2, tracer_add_livepatch x 2
    assert "drops tracer" in texts2[2] and "drops tracer" in texts2[3]
    assert texts2[4 * 4 + 2].startswith("deadlock")  # spin, tracer_add_livepatch, livepatched
    row = {"violation": 0.5, "dropped_tracer": 0, "dropped_livepatch": 0, "spurious": 0, "crash": 0,
           "trapped_placements": 4}
    assert outcome_plots.outcome_cell(row) == ("violation", "violation ×0.50\n(n=4)")


@pytest.fixture(scope="module")
def x86_tables():
    return pd.concat([load_outcome_table("seed", e, progress=False, arch="x86_64") for e in ("v5.1", "v5.2")],
                     ignore_index=True)


def test_outcome_grid_gains_x86_64_panels_each_naming_its_arch_and_entry(tables, x86_tables):
    """fig7's x86_64 row: without the entry's gap (v5.1) emulating ftrace_regs_caller pushes the
    return address onto the trap frame (a crash at the iretq); with 2700fefdb2d9's gap (v5.2)
    the same emulation is correct. The i386 rows have no arch column: they are i386's."""
    from workbench.figures.style import conditions

    both = pd.concat([tables, x86_tables], ignore_index=True)
    assert outcome_plots.outcome_panels(both) == [("i386", "v5.1"), ("i386", "v5.3"), ("x86_64", "v5.1"), ("x86_64", "v5.2")]
    fig = outcome_plots.outcome_grid(both)
    assert plots.figure_check(fig) == []
    assert tuple(fig.get_size_inches()) == plots.SIZES["grid_tall"]
    panels = [ax for ax in fig.axes if ax.texts]
    titles = [ax.get_title().splitlines()[0] for ax in panels]
    assert titles == ["i386: int3 entry v5.1", "i386: int3 entry v5.3", "x86_64: int3 entry v5.1",
                      "x86_64: int3 entry v5.2"]
    assert "2700fefdb2d9" in panels[3].get_title() and "3c88c692c287" in panels[1].get_title()
    row = STRATS.index("emulate_regs_caller")
    cells = {t: [x.get_text() for x in ax.texts][2 * row:2 * row + 2] for t, ax in zip(titles, panels, strict=True)}
    assert all(c.startswith("crash") for c in cells["x86_64: int3 entry v5.1"])
    assert all(c.startswith("correct") for c in cells["x86_64: int3 entry v5.2"])
    # the cells are the emulator's: the v5.1 table records a crash on every trapped call of that row
    v51 = x86_tables[(x86_tables.entry == "v5.1") & (x86_tables.strategy == "emulate_regs_caller")]
    v52 = x86_tables[(x86_tables.entry == "v5.2") & (x86_tables.strategy == "emulate_regs_caller")]
    assert (v51.crash == 1).all() and (v52.crash == 0).all() and (v52.violation == 0).all()
    # skip on x86_64 runs the live-patched function's old body, with or without the gap
    for t in ("x86_64: int3 entry v5.1", "x86_64: int3 entry v5.2"):
        assert panels[titles.index(t)].texts[0].get_text().startswith("violation")
    # a table of two scenarios: each column heading names the kernel it is on, so its arch
    probe = pd.concat([both] + [load_outcome_table("tracer_add_probe", e, progress=False, arch=a)
                                for a, es in (("i386", ("v5.1", "v5.3")), ("x86_64", ("v5.1", "v5.2")))
                                for e in es], ignore_index=True)
    fig = outcome_plots.outcome_grid(probe)
    assert plots.figure_check(fig) == []
    heads = [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes if ax.texts]
    assert heads[0][0] == "seed\n(i386 sketch)\nlivepatched" and heads[0][2] == "add probe\n(real i386)\nprobed"  # a probe scenario's ops sites
    assert heads[2][0] == "seed\n(real x86_64)\nlivepatched" and heads[3][3] == "add probe\n(real x86_64)\nordinary"
    assert "scenarios seed [i386 sketch, real x86_64] + tracer_add_probe [real i386, real x86_64]" in conditions(probe)
    # on x86_64 the probe's ordinary sites keep calling the tracer's own trampoline: never patched
    x86_v52 = [ax for ax in fig.axes if ax.texts][3]
    assert x86_v52.texts[3].get_text() == "never traps\n(not patched)"  # skip, add probe ordinary
    i386_v53 = [ax for ax in fig.axes if ax.texts][1]
    assert i386_v53.texts[3].get_text().startswith("violation")  # on i386 the same site passes ftrace_call


def test_tradeoff_names_livepatch_drops_only_when_there_are_some(frames):
    """fig5 draws tracer_add_probe on i386, a kernel without livepatch: no livepatch legend or label."""
    no_lp = frames["cpus"].assign(dropped_livepatch_mean=0.0)
    fig = plots.tradeoff(no_lp)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["tracer calls dropped"]
    assert fig.axes[2].get_xlabel() == "dropped tracer calls" and plots.figure_check(fig) == []
    fig = plots.tradeoff(frames["cpus"])  # the seed drops livepatch calls under skip: both named
    assert len(fig.legends[0].get_texts()) == 2 and "livepatch" in fig.axes[2].get_xlabel()


def test_outcome_grid_refuses_a_panel_it_has_no_table_of(tables, x86_tables):
    with pytest.raises(ConfigError, match="no rows of arch x86_64, entry v5.2"):
        outcome_plots.outcome_grid(tables, panels=[("i386", "v5.1"), ("x86_64", "v5.2")])
    # a scenario that one arch's tables lack: its column would read "never traps"
    probe = load_outcome_table("tracer_add_probe", "v5.3", progress=False)
    with pytest.raises(ConfigError, match="no rows of scenario tracer_add_probe, arch x86_64, entry v5.1"):
        outcome_plots.outcome_grid(pd.concat([tables, probe, x86_tables], ignore_index=True),
                           panels=[("i386", "v5.3"), ("x86_64", "v5.1")])


def test_figure_functions_refuse_frames_that_lack_columns():
    with pytest.raises(ConfigError, match="drops: frame lacks columns"):
        plots.drops(pd.DataFrame({"x": [1]}))
    with pytest.raises(ConfigError, match="strategy: the frame has no rows for 'skip'"):
        plots.heatmap(pd.DataFrame({"strategy": ["spin"], "cpus": [1], "sync_round_ns": [1.0],
                                    "violations_mean": [0.0], "dropped_tracer_mean": [0.0]}))


def test_overlap_check_can_fail():
    fig, axes = plots.new_figure("single")
    axes[0, 0].text(0.5, 0.5, "one label here")
    axes[0, 0].text(0.5, 0.5, "another label")
    fig.text(0.97, 0.5, "outside the figure")  # sticks out of the right edge
    bad = plots.text_overlaps(fig)
    assert ("one label here", "another label") in bad
    assert ("outside the figure", "<figure edge>") in bad


def test_save_is_byte_stable_and_carries_no_dates(frames, tmp_path):
    a = plots.save(plots.drops(frames["cpus"]), "f", tmp_path / "a")
    b = plots.save(plots.drops(frames["cpus"]), "f", tmp_path / "b")
    assert [p.suffix for p in a] == [".svg", ".pdf", ".png"]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    svg, pdf, png = (p.read_bytes() for p in a)
    assert b"<dc:date>" not in svg and b"CreationDate" not in pdf and b"ModDate" not in pdf
    assert b"int3-workbench" in pdf and b"int3-workbench" in png
    assert not re.search(rb"20\d\d-\d\d-\d\d", svg + png)
    from PIL import Image

    with Image.open(a[2]) as im:  # fixed size: 7 x 2.9 in at 200 dpi
        assert im.size == (1400, 580)
        assert im.info.get("Software") == "int3-workbench (matplotlib)"
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left behind


def test_regenerate_twice_gives_identical_files_and_uses_the_cache(tmp_path, monkeypatch):
    small = {"cpus": [1, 64], "sync_round_ns": [1e3, 1e7], "sites": [1, 56], "trials": 100}
    monkeypatch.setitem(figures.GRIDS, "quick", small)
    kw = dict(quick=True, backend="serial", outdir=tmp_path / "out", progress=False, cache_root=tmp_path / "c")
    first = figures.regenerate(**kw)
    names = sorted(p.name for p in first.files)
    for f in figures.FIGURES:
        for ext in FORMATS:
            assert f"{f.name}_quick.{ext}" in names  # a quick run never writes a published name
    for table in ("drops_vs_cpus", "drops_vs_timing", "heatmap_skip", "batching", "bristot", "tradeoff",
                  "closed_form_check", "outcomes"):
        assert f"{table}_quick.csv" in names
    assert first.problems == []
    assert first.sweeps["cpus"]["cached"] == 0  # a cold cache (later sweeps share some points)
    before = figures.digest(first.files)
    second = figures.regenerate(**kw)
    assert all(s["cached"] == s["points"] and s["computed"] == 0 for s in second.sweeps.values())
    assert figures.digest(second.files) == before
    assert first.figures_kept == []
    assert sorted(second.figures_kept) == sorted(f.name + "_quick" for f in figures.FIGURES)  # nothing drawn again
    # a missing file, or inputs whose digest changed, draw that figure (and only it) again
    (tmp_path / "out" / "figures" / "fig3_heatmap_skip_quick.png").unlink()
    manifest = tmp_path / "out" / "figures" / "fig5_tradeoff_quick.inputs.json"
    manifest.write_text(manifest.read_text().replace('"digest": "', '"digest": "0'))
    third = figures.regenerate(**kw)
    assert sorted(set(f.name + "_quick" for f in figures.FIGURES) - set(third.figures_kept)) == [
        "fig3_heatmap_skip_quick", "fig5_tradeoff_quick"]
    assert figures.digest(third.files) == before
    assert not list((tmp_path / "out" / "figures").glob(".*"))  # no temporaries left behind
    bristot = pd.read_csv(tmp_path / "out" / "summary" / "bristot_quick.csv")
    assert list(bristot.measured_per_site[:2]) == [168, 57]


def test_regenerate_refuses_unknown_figures(tmp_path):
    with pytest.raises(ConfigError, match="figure: unknown 'fig9'"):
        figures.regenerate(only=["fig9"], outdir=tmp_path, progress=False)


def test_style_save_and_checks_are_still_importable_from_plots():
    from workbench.figures import style as figstyle

    for name in plots.__all__:
        assert hasattr(plots, name), name
    for name in set(figstyle.__all__) & set(plots.__all__):
        assert getattr(plots, name) is getattr(figstyle, name), name


def test_a_long_caption_stays_inside_the_png_at_the_resolution_it_is_written():
    """A conditions caption is fitted to the figure's width; text is wider at PNG_DPI than at the
    screen's 100 dpi (glyph hinting), so a caption fitted at 100 dpi alone ran past the PNG's edge
    (fig1 and fig5 lost the end of their code version)."""
    import matplotlib.pyplot as plt

    from workbench.figures.style import PNG_DPI, caption, figure_check, style

    text = ("scenarios seed + tracer_add_livepatch; entry v5.3; sync round 337 µs (24 CPUs); 40k tail sites; "
            "trampoline calls patched; 100k trials/point; seed 0; full grid; code 3e1f0c2ab")
    with style():
        fig, ax = plt.subplots(1, 2, figsize=(7, 3.6), layout="constrained")
        ax[0].plot([1, 2], [1, 2])
        ax[0].set(xlabel="x", ylabel="y")
        ax[1].set(xlabel="x")
    caption(fig, text)
    figure_check(fig)
    fig.set_layout_engine("none")
    try:
        for dpi in (100, PNG_DPI):
            fig.set_dpi(dpi)
            fig.canvas.draw()
            extent = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
            assert extent.x1 <= fig.bbox.width + 0.5, (dpi, extent.x1, fig.bbox.width)
        assert fig._suptitle.get_text().replace(";\n", "; ") == text  # broken at "; ", nothing lost
    finally:
        plt.close(fig)


def test_a_long_panel_title_stays_inside_the_png(frames):
    """Constrained layout sizes a panel by its title's height only: a title wider than its panel
    reached the PNG's right edge (fig1, fig2). Rendered, the PNG's outer columns stay background."""
    import io

    from PIL import Image

    from workbench.figures.style import render

    note = "scenario tracer_add_livepatch (tracer running), with a note longer than its panel"
    fig = plots.drops(frames["timing"], x="sync_round_ns", panel_notes={"dropped_tracer": note})
    png = Image.open(io.BytesIO(render(fig, formats=("png",))["png"])).convert("L")
    w, h = png.size
    for x0, x1 in ((0, 3), (w - 3, w)):
        assert png.crop((x0, 0, x1, h)).getextrema()[0] > 240, f"ink within 3 px of the edge at x={x0}"


def test_figure_defects_a_reader_saw_are_gone(frames, tables):
    """fig5: no legend shows one swatch for two meanings, the stall axis is linear from 0 and a
    deadlock names what its count is; fig3: a colour bar over < 3 decades labels more than its
    decades; fig7: says what ×0.41 means; a wrapped caption leaves no item alone on its last line."""
    from workbench.figures.style import caption

    fig = plots.tradeoff(frames["cpus"])
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        looks = [(tuple(p.get_facecolor()), p.get_hatch()) for p in legend.get_patches()]
        assert len(set(looks)) == len(looks), [t.get_text() for t in legend.get_texts()]
    assert fig.axes[0].get_xscale() == "linear" and fig.axes[0].get_xlim()[0] == 0
    assert any("calls stuck in int3" in t.get_text() for ax in fig.axes for t in ax.texts)
    heat = frames["heatmap"].copy()
    heat["violations_mean"] = np.linspace(185, 48_800, len(heat))
    fig = plots.heatmap(heat)
    cbar = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"][0]
    fig.canvas.draw()
    labels = [t.get_text() for t in cbar.get_yticklabels() if t.get_text()]
    assert len(labels) >= 4, labels
    fig = outcome_plots.outcome_grid(tables)
    assert "×f = on a share f of those placements" in fig.legends[0].get_title().get_text()
    fig, _ = plots.new_figure("wide")
    text = "; ".join(f"condition number {i}" for i in range(12)) + "; code 0123abcd"
    caption(fig, text)
    lines = fig._suptitle.get_text().split("\n")
    assert len(lines) > 1 and len(lines[-1]) > 0.5 * len(lines[-2]), lines
