"""Figure 8: i386 beside x86_64 on the same question, every line naming its kernel."""

import numpy as np
import pytest

from workbench.base.errors import ConfigError
from workbench.figures import job as figures
from workbench.figures import plots
from workbench.race.experiment import race_grid
from workbench.sweep.engine import sweep


@pytest.fixture(scope="module")
def arch_frame(tmp_path_factory):
    grid = race_grid(arch=["i386", "x86_64"], scenario=list(figures.ARCH_SCENARIOS), strategy="skip",
                     cpus=[1, 16, 64, 256], trials=200)
    return sweep(grid, backend="serial", cache_root=tmp_path_factory.mktemp("archcache"), progress=False)


def test_arch_figure_draws_each_scenario_on_each_arch_labelled_with_its_kernel(arch_frame):
    fig = figures._draw("fig8_arch_compare", {"arch": arch_frame}, {})
    assert plots.figure_check(fig) == []
    assert tuple(fig.get_size_inches()) == plots.SIZES["wide_tall"]
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert labels == {"tracer_add_livepatch, i386 [i386 sketch]", "tracer_add_livepatch, x86_64 [real x86_64]",
                      "tracer_add_probe, i386 [real i386]", "tracer_add_probe, x86_64 [real x86_64]",
                      "seed, i386 [i386 sketch]", "seed, x86_64 [real x86_64]"}
    left, right = fig.axes[:2]
    lines = {ln.get_label(): ln for ln in left.lines}
    i386 = lines["tracer_add_livepatch, i386 [i386 sketch]"].get_ydata()
    x86 = lines["tracer_add_livepatch, x86_64 [real x86_64]"].get_ydata()
    assert np.all(x86[1:] * 100 < i386[1:])  # the figure shows the gap the routing makes
    assert "dropped tracer" in left.get_ylabel() and "dropped livepatch" in right.get_ylabel()


def test_arch_figure_caption_leaves_scenario_and_entry_to_the_legend(arch_frame):
    data = figures._data_of("fig8_arch_compare", {"arch": arch_frame}, {})
    assert "scenario" not in data and "entry" not in data  # each arch has its own entry; the legend names both
    assert set(arch_frame.groupby("arch")["entry"].unique().map(tuple)) == {("v5.3",), ("v5.2",)}
    # the other figures' captions never read the arch sweep
    other = figures._data_of("fig1_drops_vs_cpus", {"arch": arch_frame, "cpus": arch_frame[arch_frame.arch == "i386"]}, {})
    assert set(other["arch"]) == {"i386"}


def test_arch_figure_refuses_mixed_strategies(arch_frame):
    two = arch_frame.assign(strategy=["skip", "spin"] * (len(arch_frame) // 2))
    with pytest.raises(ConfigError, match="one strategy"):
        plots.arch_compare(two, {})
