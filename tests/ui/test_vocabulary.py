"""One vocabulary: the command line, the sweep grid and the data columns use the same names."""

import argparse
import importlib
import json
import shutil

import pytest

from workbench.base.vocabulary import COLUMNS, ENTRIES, STRATEGIES
from workbench.emulate.scenario import SCENARIO_DIR
from workbench.race.experiment import RACE_PARAMETERS, race_grid
from workbench.sweep.engine import sweep
from workbench.ui.cli import COMMANDS, main


def _options(command):
    """The long options of *command*, read from its argparse parser."""
    parser = argparse.ArgumentParser()
    importlib.import_module(f"workbench.ui.commands.{COMMANDS[command][0]}").configure(parser)
    return {s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"help"}


def test_simulate_options_are_the_sweep_parameters():
    opts = {o.replace("-", "_") for o in _options("simulate")}
    assert opts - {"seed", "json", "bristot"} == set(RACE_PARAMETERS)


def test_every_parameter_and_column_is_defined_once_with_a_unit():
    frame = sweep(race_grid(cpus=[2], trials=20, outcomes="none"), backend="serial", cache=False, progress=False)
    names = set(RACE_PARAMETERS) | set(frame.columns)
    missing = sorted(n for n in names if n not in COLUMNS)
    assert missing == []
    for name in names:
        term = COLUMNS[name]
        assert term.unit and term.meaning
        if name.endswith("_ns") or "_ns_" in name:
            assert term.unit == "ns", name


def test_the_strategy_registry_is_the_vocabulary():
    import workbench.kernel.int3 as int3

    assert tuple(int3._REGISTRY) == STRATEGIES
    assert [int3.get_strategy(s).name for s in STRATEGIES] == list(STRATEGIES)


def test_simulate_and_a_sweep_point_give_the_same_numbers(capsys):
    """One timing model: ``simulate --sync-round-ns`` is the sweep's ``sync_round_ns``."""
    assert main(["simulate", "--cpus", "16", "--sync-round-ns", "1e5", "--trials", "300", "--seed", "3",
                 "--outcomes", "none", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    point = sweep(race_grid(cpus=16, sync_round_ns=1e5, trials=300, outcomes="none"), seed=3, backend="serial",
                  cache=False, progress=False).iloc[0]
    for col in ("ipi_round_ns", "trapped_mean", "trapped_cf", "patch_ns_mean", "window_ns_mean", "stall_ns_mean"):
        assert record[col] == point[col], col


def test_simulate_list_position_does_not_change_a_configuration(capsys):
    args = ["simulate", "--trials", "200", "--outcomes", "none", "--json", "--seed", "5"]
    assert main(args + ["--cpus", "64"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(args + ["--cpus", "16,64"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both[1]["trapped_mean"] == alone[0]["trapped_mean"]


def test_simulate_takes_a_scenario_file(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    shutil.copy(SCENARIO_DIR / "seed.toml", path)
    assert main(["simulate", "--scenario", str(path), "--cpus", "4", "--trials", "50",
                 "--outcomes", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["trapped_mean"] > 0


def test_columns_command_prints_every_column(capsys):
    assert main(["columns", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["column"] for r in rows] == list(COLUMNS)
    assert main(["columns", "sync_round_ns"]) == 0
    assert "ns" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["simulate", "--cpus", "4", "--write-ns", "1,2"], "write_ns: takes one value"),
    (["simulate", "--entry", "v5.2"], "entry: unknown value 'v5.2'"),
    (["columns", "bogus"], "column: unknown value 'bogus'"),
])
def test_bad_vocabulary_is_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert ENTRIES  # the entries named in the message are the vocabulary's
