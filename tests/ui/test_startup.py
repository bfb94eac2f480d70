"""Start-up: what ``--version``, ``--help`` and a command's option parsing import.

``python -m workbench --version`` and ``--help`` load no command module and
none of the numeric, plotting, emulation or notebook libraries; a command
imports what its work needs when the work starts, so its options are
parsed and checked (and bad input refused) before NumPy, pandas or Unicorn
load. Each case runs in a fresh interpreter that records ``sys.modules``
where the command's ``run`` would begin. How long start-up takes is
measured in benchmarks/bench_startup.py, against ``python -c pass``.
"""

import json
import subprocess
import sys

import pytest

#: libraries (top-level names) that neither --version nor --help may import
HEAVY = ("numpy", "pandas", "pyarrow", "matplotlib", "unicorn", "capstone", "elftools", "dask", "distributed",
         "joblib", "tqdm", "papermill", "nbformat", "nbclient", "jupyter_client", "IPython", "ipywidgets",
         "playwright", "yaml")

#: what a command's parsing may not import (capstone and pyelftools are light: kernel text names)
NUMERIC = ("numpy", "pandas", "pyarrow", "matplotlib", "unicorn", "dask", "distributed", "joblib", "papermill",
           "IPython", "ipywidgets", "playwright")

#: ``python -m workbench ARGS``, but a command's ``run`` prints the loaded modules and ends the process
PROBE = """\
import importlib, json, os, runpy, sys
_real = importlib.import_module
def _stop(args):
    print(json.dumps(sorted(sys.modules)), flush=True)
    os._exit(0)
def _hook(name, package=None):
    module = _real(name, package)
    if name.startswith("workbench.ui.commands."):
        module.run = _stop
    return module
importlib.import_module = _hook
sys.argv = ["workbench", *sys.argv[1:]]
try:
    runpy.run_module("workbench", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), flush=True)
"""


def loaded(*args, pre=""):
    """(stdout before the module list, top-level names of every module loaded); *pre* runs first."""
    r = subprocess.run([sys.executable, "-c", pre + "\n" + PROBE, *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    head, _, last = r.stdout.rstrip("\n").rpartition("\n")
    modules = json.loads(last)
    return head, modules


@pytest.mark.parametrize("flag, needle", [("--version", "int3-workbench "), ("--help", "commands:")])
def test_version_and_help_load_no_heavy_library_and_no_command(flag, needle):
    out, modules = loaded(flag)
    assert needle in out
    top = {m.split(".")[0] for m in modules}
    assert sorted(top & set(HEAVY)) == []
    assert [m for m in modules if m.startswith("workbench.ui.commands.")] == []
    # --help still lists every command
    if flag == "--help":
        from workbench.ui.cli import COMMANDS

        assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("argv", [
    ["listing", "ftrace_caller"],
    ["call", "--function", "do_IRQ"],
    ["scenarios"],
    ["explore", "--scenario", "seed", "--strategy", "skip"],
    ["model-check", "--cpus", "2"],
    ["model-check", "--arch", "x86_64", "--strategy", "skip"],
    ["simulate", "--strategy", "skip", "--cpus", "24"],
    ["sweep", "--set", "cpus=1,2", "--serial"],
    ["figures", "--quick"],
    ["columns"],
    ["report", "--quick"],
    ["replay", "cex.json"],
    ["anchor", "--quick"],
    ["check-tree", "--kernel-tree", "linux"],
    ["kernel-source", "--series", "6.1"],
])
def test_a_command_parses_its_options_before_loading_numeric_libraries(argv):
    _, modules = loaded(*argv)
    top = {m.split(".")[0] for m in modules}
    assert sorted(top & set(NUMERIC)) == []
    from workbench.ui.cli import COMMANDS

    assert f"workbench.ui.commands.{COMMANDS[argv[0]][0]}" in modules  # run was reached: the probe stopped it there


#: build each command's parser and parse ``COMMAND --help``, in one interpreter; after each command, print
#: the top-level names of the libraries of *argv[1:]* loaded so far (the set only grows: the first
#: command that loads one is the one that names it first)
EVERY_HELP = """\
import json, sys
from workbench.ui.cli import COMMANDS, _build
watched = set(sys.argv[1:])
for name in COMMANDS:
    try:
        _build([name, "--help"]).parse_args([name, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (name, exc.code)
    print(json.dumps([name, sorted({m.split(".")[0] for m in sys.modules} & watched)]), flush=True)
"""


def test_every_command_builds_its_parser_and_parses_help_without_numeric_libraries():
    from workbench.ui.cli import COMMANDS

    r = subprocess.run([sys.executable, "-c", EVERY_HELP, *NUMERIC], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("[")]
    assert [name for name, _ in rows] == list(COMMANDS)  # every command's parser was built
    assert [(name, heavy) for name, heavy in rows if heavy] == []


def test_the_every_help_probe_sees_a_heavy_import():
    # the check itself: a library loaded along the way is named from the first command on
    r = subprocess.run([sys.executable, "-c", "import numpy\n" + EVERY_HELP, *NUMERIC], capture_output=True,
                       text=True, timeout=120)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("[")]
    assert rows and all("numpy" in heavy for _, heavy in rows)


def test_the_probe_sees_a_heavy_import():
    # the check itself: Unicorn loaded before the command line runs is in the module set it reports
    _, modules = loaded("columns", pre="import unicorn")
    assert "unicorn" in {m.split(".")[0] for m in modules}
