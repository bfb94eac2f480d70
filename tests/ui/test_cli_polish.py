"""The command line as a person meets it: --version, its name, help with examples, pipes, units."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from workbench import __version__
from workbench.base.version import code_version
from workbench.ui.cli import prog_name
from workbench.ui.format import human_table, human_value

ROOT = Path(__file__).resolve().parents[2]


def wb(*args, env=None, argv0=None):
    code = ("import sys; from workbench.ui.cli import main; "
            + (f"sys.argv[0] = {argv0!r}; " if argv0 else "") + "sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_version_names_package_and_code():
    r = wb("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"int3-workbench {__version__} (code {code_version()})"


def test_prog_name_follows_how_it_was_run():
    assert prog_name("/usr/local/bin/int3-workbench") == "int3-workbench"
    assert prog_name("/x/workbench/__main__.py") == "python -m workbench"
    r = wb("--help", argv0="/venv/bin/int3-workbench")
    assert r.stdout.startswith("usage: int3-workbench ")
    assert "int3-workbench figures --quick" in r.stdout  # the examples use the same name


def test_top_level_help_is_a_description_with_examples_not_a_docstring():
    r = wb("--help")
    assert r.returncode == 0
    assert "``" not in r.stdout and ":mod:" not in r.stdout and "ConfigError" not in r.stdout
    assert "examples:" in r.stdout and "report" in r.stdout and "--version" in r.stdout
    said = " ".join(r.stdout.split("options:")[0].split())  # argparse wraps the description
    assert "i386 or x86_64" in said and "5-byte i386 call site" not in said  # both emulated kernels
    sweep = wb("sweep", "--help")
    assert "Examples:" in sweep.stdout and "--force" in sweep.stdout and "``" not in sweep.stdout


def test_a_closed_pipe_ends_quietly():
    # `... | head -1`: the reader goes away after one line
    p = subprocess.Popen([sys.executable, "-m", "workbench", "scenarios"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert p.returncode in (0, 141)


def test_human_units_in_text_and_base_units_in_json():
    assert human_value("patch_ns_mean", 4.30787e9) == "4.31 s"
    assert human_value("window_ns", 337_000.0) == "337 µs"
    assert human_value("stall_cpu_ms", 1.5) == "1.5 ms"
    assert human_value("trapped_mean", 8957693.5) == "8.958M"
    assert human_value("cpus", 24) == "24"
    assert "4.31 s" in human_table(pd.DataFrame({"patch_ns": [4.30787e9]}))
    args = ("simulate", "--strategy", "skip", "--cpus", "24", "--trials", "50")
    text = wb(*args)
    assert text.returncode == 0, text.stderr
    assert "e+0" not in text.stdout and " ms" in text.stdout
    records = json.loads(wb(*args, "--json").stdout)
    assert records[0]["patch_ns_mean"] > 1e6  # JSON keeps nanoseconds


def test_sweep_says_where_it_wrote_and_refuses_to_overwrite(tmp_path):
    env = {"WORKBENCH_DATA": str(tmp_path)}
    args = ("sweep", "--set", "cpus=2,4", "--set", "trials=20", "--serial", "--quiet", "--out", "mine")
    first = wb(*args, env=env)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "sweeps" / "mine.parquet"
    assert f"wrote {path}" in first.stdout
    before = path.read_bytes()
    second = wb(*args, env=env)
    assert second.returncode == 2 and "--force" in second.stderr and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before
    third = wb(*args, "--force", env=env)
    assert third.returncode == 0 and f"wrote {path}" in third.stdout
    frame = pd.read_parquet(path)
    assert frame.attrs["provenance"]["grid"] == "mine" and set(frame["grid"]) == {"mine"}


def test_help_says_what_every_option_is_in_plain_text():
    r = wb("call", "--help")
    after = r.stdout.split("\n  --entry", 1)[1].split("\n  --", 1)[0]  # its line in the options list
    assert r.returncode == 0 and "int3 entry" in after and "v5.3" in after
    r = wb("simulate", "--help")
    assert r.returncode == 0 and ":data:" not in r.stdout and "`" not in r.stdout
    assert "sweep --set sync_round_ns=" in r.stdout  # lists of the round: where to go


def test_explore_fits_100_columns_unless_asked_and_says_what_its_columns_are():
    narrow = wb("explore", "--scenario", "seed", "--strategy", "all", "--quiet")
    assert narrow.returncode == 0, narrow.stderr
    assert max(map(len, narrow.stdout.splitlines())) <= 100
    assert "schedules_raw" not in narrow.stdout and "skip: " in narrow.stdout and "schedules (" in narrow.stdout
    assert "placements = trapped_placements" in narrow.stdout
    wide = wb("explore", "--scenario", "seed", "--strategy", "all", "--quiet", "--wide")
    assert "schedules_raw" in wide.stdout and max(map(len, wide.stdout.splitlines())) > 100
    rows = json.loads(wb("explore", "--scenario", "seed", "--strategy", "skip", "--quiet", "--json").stdout)
    assert "schedules_raw" in rows[0] and "trapped_placements" in rows[0]


def test_model_checking_table_explains_why_a_deadlock_counts_as_a_violation(tmp_path):
    r = wb("model-check", "--cpus", "2", "--strategy", "spin", "--quiet",
           "--cex-dir", str(tmp_path), env={"WORKBENCH_DATA": str(tmp_path / "data")})
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if not ln.startswith("counterexample:")]
    assert max(map(len, lines)) <= 100
    assert "note: a deadlocked call" in r.stdout and "counts as a violation" in r.stdout
