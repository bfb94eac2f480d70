"""Widget callbacks tested without a browser: set a control's value, check what changed."""

import numpy as np
import pytest

from workbench.ui.step_viewer import StepViewer
from workbench.ui.widgets import Explorer

SVG = b"<svg"  # the explorer draws vector graphics


@pytest.fixture(scope="module")
def explorer():
    return Explorer(strategies=("skip", "emulate_old"), cpus=(1, 4), trials=60)


def test_explorer_starts_with_a_plot_and_a_table(explorer):
    f = explorer.frame
    assert sorted(set(f.strategy)) == ["emulate_old", "skip"] and sorted(set(f.cpus)) == [1, 2, 4]
    assert SVG in bytes(explorer.plot.value)[:400]
    assert "violations_mean" in explorer.table.value and "error" not in explorer.status.value


def test_explorer_controls_drive_the_sweep(explorer):
    explorer.cpus.value = (4, 16)
    assert sorted(set(explorer.frame.cpus)) == [4, 8, 16]

    before = explorer.frame.set_index(["strategy", "cpus"])["violations_cf"]
    explorer.do_irq_rate.value = explorer.do_irq_rate.value * 10 ** 0.5
    after = explorer.frame.set_index(["strategy", "cpus"])["violations_cf"]
    # the live-patched do_IRQ carries the violations: 10^0.5 the rate, 10^0.5 the violations (closed form)
    assert np.allclose(after.loc["skip"] / before.loc["skip"], 10 ** 0.5, rtol=0.02)
    assert (after.loc["emulate_old"] == 0).all()

    explorer.sync_round_us.value = 1000.0
    assert np.allclose(explorer.frame.sync_round_ns, 1e6)

    old_png = explorer.plot.value
    explorer.metric.value = "dropped_tracer"
    assert "dropped_tracer_mean" in explorer.table.value and "violations_mean" not in explorer.table.value
    assert bytes(explorer.plot.value) != bytes(old_png)

    explorer.strategies.value = ("stop_machine",)
    assert set(explorer.frame.batching) == {"stop_machine"}  # its own batching, whatever the dropdown
    explorer.batching.value = "per_site"
    explorer.strategies.value = ("skip", "stop_machine")
    assert set(zip(explorer.frame.strategy, explorer.frame.batching, strict=True)) == {("skip", "per_site"),
                                                                          ("stop_machine", "stop_machine")}


def test_explorer_shows_bad_settings_as_a_one_line_error(explorer):
    frame = explorer.frame
    explorer.strategies.value = ()
    assert "error" in explorer.status.value and "strategies: choose at least one" in explorer.status.value
    assert explorer.frame is frame  # the last good result stays
    explorer.strategies.value = ("skip",)
    assert "error" not in explorer.status.value and set(explorer.frame.strategy) == {"skip"}


def test_step_viewer_starts_on_the_armed_site():
    v = StepViewer(strategy="emulate_regs_caller", entry="v5.3", cpus=2)
    assert v.stepper.step_names()[v.step.value].endswith("int3")
    assert v.state["site"]["int3"] and v.state["site"]["bytes"].startswith("cc")
    assert v.insn.max >= v.stepper.length(v.step.value)
    assert "int3 armed" in v.view.value


def test_step_viewer_sliders_step_into_the_trap_and_show_pt_regs():
    v = StepViewer(strategy="emulate_regs_caller", entry="v5.3", cpus=2)
    site = v.stepper.site
    at = v.stepper.seek(v.step.value, lambda c: c["where"] == "do_int3")
    v.insn.value = at["cpus"][0]["executed"]
    c0, c1 = v.state["cpus"]
    assert c0["where"] == "do_int3" and c0["trapped"]
    assert c0["pt_regs_from"] == "int3 entry" and c0["pt_regs"]["ip"] == site + 1  # one past the int3
    assert c1["executed"] == c0["executed"] - v.stepper.lag  # the second CPU lags behind
    assert "pt_regs @" in v.view.value
    v.insn.value += 1  # do_int3 ran the strategy: the trapped call now "returns" into the trampoline
    assert v.state["cpus"][0]["pt_regs"]["ip"] == v.stepper.image.sym("ftrace_regs_caller")
    v.insn.value = v.insn.max
    assert v.state["cpus"][0]["returned"] and "klp_new_do_IRQ" in v.state["cpus"][0]["path"]


def test_step_viewer_rebuilds_on_strategy_entry_and_function():
    v = StepViewer(strategy="emulate_regs_caller", entry="v5.3", cpus=1)
    v.entry.value = "v5.1"  # the i386 frame without the gap: the emulated push faults
    v.insn.value = v.insn.max
    assert v.state["entry"] == "v5.1" and "oops" in (v.state["cpus"][0]["crash"] or "")
    v.strategy.value = "skip"
    v.insn.value = v.insn.max
    c = v.state["cpus"][0]
    assert c["returned"] and c["trapped"] and not any("caller" in p for p in c["path"])
    old_site = v.state["site"]["address"]
    v.function.value = "__migrate_task"
    assert v.state["function"] == "__migrate_task" and v.state["site"]["address"] != old_site
    v.step.value = 0  # before the patch: the site calls the live-patch trampoline
    assert not v.state["site"]["int3"] and "live_patch_trampoline" in v.state["site"]["insn"]


def test_a_saved_viewer_carries_a_static_snapshot_of_its_current_state():
    """Without a kernel (the report, nbconvert) a widget view shows nothing: the box the explorer and the
    step viewer display also gives text/html, their controls' values and views as they were."""
    ex = Explorer(strategies=("skip",), cpus=(1, 4), trials=40)
    ex.sync_round_us.value = 1000.0
    data = ex.widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    snap = data["text/html"]
    assert "<b>IPI round (µs)</b> 1k" in snap and "<b>CPUs</b> 1–4" in snap and "<b>strategies</b> skip" in snap
    assert "data:image/svg+xml;base64," in snap and "violations_mean" in snap  # the plot and the table
    assert "e+0" not in snap.split("base64,")[0]
    sv = StepViewer("seed", "emulate_new", "v5.3", "do_IRQ", cpus=2)
    sv.insn.value = 3
    snap = sv.widget._repr_mimebundle_()["text/html"]
    assert "<b>instruction</b> 3" in snap and "<pre" in snap and "3 instructions" in snap


def test_step_viewer_arch_control_offers_that_arch_s_entries_and_draws_it():
    v = StepViewer(strategy="emulate_regs_caller", cpus=1)
    assert v.state["arch"] == "i386" and v.view.value.startswith("<pre") and "i386 · patch step" in v.view.value
    v.arch.value = "x86_64"  # one rebuild, on x86_64's latest entry
    assert list(v.entry.options) == ["v5.1", "v5.2"] and v.entry.value == "v5.2"
    assert v.state["arch"] == "x86_64" and v.state["entry"] == "v5.2" and "x86_64 · patch step" in v.view.value
    assert v.status.value.startswith("step ") and "(x86_64, entry v5.2)" in v.status.value
    v.insn.value = v.insn.max
    c = v.state["cpus"][0]
    assert c["returned"] and "ftrace_regs_caller" in c["path"] and "rip 0x" in v.view.value
    v.entry.value = "v5.1"  # no gap: the emulated push lands on the trap frame
    v.insn.value = v.insn.max
    assert "iretq" in (v.state["cpus"][0]["crash"] or "")
    v.arch.value = "i386"
    assert list(v.entry.options) == ["v5.1", "v5.3"] and v.state["entry"] == "v5.3"


def test_explorer_arch_control(tmp_path, monkeypatch):
    """The arch control: x86_64's own entries, each scenario labelled with its kernel on the arch,
    every row and the plot title naming the arch; a scenario the arch cannot have is one line."""
    ex = Explorer(strategies=("skip", "emulate_old"), cpus=(1, 4), trials=40)
    labels = dict((n, lab) for lab, n in ex.scenario.options)
    assert labels["seed"] == "seed [i386 sketch]" and labels["tracer_add_probe"] == "tracer_add_probe [real i386]"
    assert set(ex.frame.arch) == {"i386"} and ">i386<" in ex.table.value
    ex.arch.value = "x86_64"
    assert list(ex.entry.options) == ["v5.1", "v5.2"] and ex.entry.value == "v5.2"
    labels = dict((n, lab) for lab, n in ex.scenario.options)
    assert labels["seed"] == "seed [real x86_64]" and ex.scenario.value == "seed"
    assert set(ex.frame.arch) == {"x86_64"} and set(ex.frame.entry) == {"v5.2"}
    assert "x86_64 entry v5.2" in ex.figure.axes[0].get_title() and "real x86_64" in ex.figure.axes[0].get_title()
    assert ">x86_64<" in ex.table.value and "error" not in ex.status.value
    assert ex.config()["arch"] == "x86_64" and all(t["arch"] == "x86_64" for t in ex.grid_tables())
    # a saved x86_64 configuration loads back with its entry (the arch is set first)
    saved = ex.save(tmp_path / "x.toml")
    ex.arch.value = "i386"
    assert ex.entry.value == "v5.3"  # v5.2 is not an i386 entry: the arch's latest
    ex.load(saved)
    assert (ex.arch.value, ex.entry.value) == ("x86_64", "v5.2") and set(ex.frame.arch) == {"x86_64"}

    # a scenario file that says it runs on x86_64 only: listed as such, refused on i386 in one line
    import workbench.emulate.scenario as scenario_module

    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    for n in ("seed",):
        (scenarios / f"{n}.toml").write_bytes((scenario_module.SCENARIO_DIR / f"{n}.toml").read_bytes())
    (scenarios / "probe_x86_only.toml").write_text(
        'description = "a tracer, said to run on x86_64 only"\narches = ["x86_64"]\n'
        '[ops.tracer]\nkind = "tracer"\nfunctions = "all"\n[transition]\nbefore = []\nafter = ["tracer"]\n')
    monkeypatch.setattr(scenario_module, "SCENARIO_DIR", scenarios)
    ex = Explorer(strategies=("skip",), cpus=(1, 2), trials=20)
    labels = dict((n, lab) for lab, n in ex.scenario.options)
    assert labels["probe_x86_only"] == "probe_x86_only [not on i386]"
    frame = ex.frame
    ex.scenario.value = "probe_x86_only"
    assert ex.status.value.count("error") == 1 and "cannot run on arch i386" in ex.status.value
    assert "choose arch from x86_64" in ex.status.value and "Traceback" not in ex.status.value
    assert ex.frame is frame  # the last good result stays
    ex.arch.value = "x86_64"
    assert dict((n, lab) for lab, n in ex.scenario.options)["probe_x86_only"] == "probe_x86_only [real x86_64]"
