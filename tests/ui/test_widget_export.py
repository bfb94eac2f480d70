"""Explorer export, save/load, command and compare; step viewer play, jump-to-trap and frame state."""

import base64
import io
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from workbench.base.errors import ConfigError
from workbench.base.provenance import PROVENANCE_COLUMNS
from workbench.emulate.stepper import CallStepper
from workbench.ui.step_viewer import StepViewer, render_state
from workbench.ui.widgets import Explorer


@pytest.fixture()
def explorer():
    return Explorer(strategies=("skip", "stop_machine"), cpus=(1, 4), trials=40)


def test_csv_export_has_full_precision_and_provenance(explorer):
    back = pd.read_csv(io.StringIO(explorer.to_csv()))
    for col in PROVENANCE_COLUMNS:
        assert col in back.columns, col
    assert set(back["config"]) == {"current"}
    np.testing.assert_array_equal(back["violations_mean"].to_numpy(), explorer.frame["violations_mean"].to_numpy())
    # the download link carries the same bytes
    link = re.search(r"download='explorer.csv' href='data:text/csv;base64,([^']+)'", explorer.exports.value)
    assert base64.b64decode(link.group(1)).decode() == explorer.to_csv()


def test_save_and_load_a_configuration(explorer, tmp_path):
    explorer.entry.value = "v5.1"
    explorer.sync_round_us.value = 100.0
    path = explorer.save(tmp_path / "mine.toml")
    assert str(path.resolve()) in explorer.status.value
    other = Explorer(strategies=("skip",), cpus=(1, 2), trials=40)
    other.load(path)
    assert other.config() == explorer.config()
    pd.testing.assert_frame_equal(other.frame, explorer.frame)
    with pytest.raises(ConfigError, match="no \\[explorer\\] table"):
        (tmp_path / "bad.toml").write_text("x = 1\n")
        other.load(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        other.set_config({"colour": "red"})


def test_the_command_computes_the_numbers_shown(explorer, tmp_path):
    explorer.save(tmp_path / "explorer.toml")
    cmd = explorer.command("explorer.toml").splitlines()[0].split()
    assert cmd[:4] == ["int3-workbench", "sweep", "--config", "explorer.toml"]
    r = subprocess.run([sys.executable, "-m", "workbench", *cmd[1:], "--serial", "--quiet", "--no-cache"],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "WORKBENCH_DATA": str(tmp_path / "data")})
    assert r.returncode == 0, r.stderr
    swept = pd.read_parquet(tmp_path / "data" / "sweeps" / "explorer.parquet")
    for col in ("strategy", "cpus", "violations_mean", "dropped_tracer_mean", "patch_ns_mean"):
        np.testing.assert_array_equal(swept[col].to_numpy(), explorer.frame[col].to_numpy(), err_msg=col)


def test_compare_draws_a_and_b_on_the_same_axes(explorer):
    explorer.pin()
    assert explorer.pin_button.value and "unpin" in explorer.pin_button.description
    explorer.entry.value = "v5.1"
    axes = [ax for ax in explorer.figure.axes if ax.lines]
    assert len(axes) == 2
    assert axes[0].get_title().startswith("A: ") and "entry v5.3" in axes[0].get_title()
    assert axes[1].get_title().startswith("B: ") and "entry v5.1" in axes[1].get_title()
    assert axes[0].get_ylim() == axes[1].get_ylim()
    table = pd.read_csv(io.StringIO(explorer.to_csv()))
    assert sorted(set(table["config"])) == ["A", "B"] and set(table[table.config == "A"].entry) == {"v5.3"}
    explorer.unpin()
    assert len([ax for ax in explorer.figure.axes if ax.lines]) == 1 and explorer.pinned is None


def test_busy_while_computing_and_table_is_compact(explorer, monkeypatch):
    seen = []
    real = Explorer.grid

    def watching(self):
        seen.append((self.busy, all(c.disabled for c in self.controls), "computing" in self.status.value))
        return real(self)

    monkeypatch.setattr(Explorer, "grid", watching)
    explorer.trials.value = 41
    assert seen == [(True, True, True)]
    assert not explorer.busy and not any(c.disabled for c in explorer.controls)
    assert "border=\"1\"" not in explorer.table.value and "wb-scroll{max-height:260px;overflow:auto}" in explorer.table.value
    assert b"<svg" in bytes(explorer.plot.value)[:400]  # vector, sharp at any dpi


def test_step_viewer_says_the_frame_is_being_built_inside_the_int3_entry():
    cs = CallStepper("seed", "emulate_regs_caller", "v5.3", "do_IRQ", cpus=1)
    step = cs.trap_step()
    at = cs.next_trap(step, 0)
    c = at["cpus"][0]
    assert c["where"] == "int3_entry_v53"
    inside = cs.state(step, c["executed"] + 4)
    text = render_state(inside)
    assert inside["cpus"][0]["where"].startswith("int3_entry_v53+")
    assert "none live" not in text and "being built by int3_entry_v53" in text
    # at do_int3 the frame is complete and shown
    done = cs.seek(step, lambda st: st["where"] == "do_int3")
    assert done["cpus"][0]["pt_regs"] is not None and "complete" in done["cpus"][0]["frame"]


def test_step_viewer_play_and_jump_to_trap():
    v = StepViewer(cpus=1)
    assert v.play.max == v.insn.max and v.insn.value == 0
    assert v.jump_to_trap()
    assert v.state["cpus"][0]["where"] == "int3_entry_v53"
    first = v.insn.value
    assert not v.jump_to_trap() and v.insn.value == first  # emulate_regs_caller traps once
    assert "no further trap" in v.status.value
    v.step.value = 0  # before the patch: no int3 on the site
    v.insn.value = 0
    assert not v.jump_to_trap()
