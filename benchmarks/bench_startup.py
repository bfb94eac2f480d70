"""Start-up: what a command costs before its first line of work, against ``python -c pass``.

Times, in fresh processes of this interpreter, interleaved round by round
so that a busy machine slows every variant alike: ``python -c pass`` (the
floor), ``python -m workbench --version`` and ``--help``, and, for every
command, the time until its ``run(args)`` is entered (the interpreter, the
command line, the parsing and checking of the options and the command's
own imports; the process ends there, so no work is done). Each line gives
the median of the rounds and the excess over the floor; the targets are
0.3 s for ``--version``/``--help`` and 0.5 s for a command.

``--before REV`` times the same commands on the package as it was at git
revision REV (extracted to a temporary directory), in the same rounds, so
one run shows before and after. Run from the checkout's root:
``python benchmarks/bench_startup.py [--before REV] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: a command line per command (what ``run`` would get; the process stops when ``run`` is entered)
COMMAND_LINES = {
    "listing": ["listing", "ftrace_regs_caller"],
    "call": ["call", "--function", "do_IRQ"],
    "scenarios": ["scenarios", "--steps"],
    "explore": ["explore", "--scenario", "seed", "--strategy", "skip"],
    "model-check": ["model-check", "--cpus", "2", "--strategy", "skip"],
    "simulate": ["simulate", "--strategy", "skip", "--cpus", "24"],
    "sweep": ["sweep", "--set", "strategy=skip", "--set", "cpus=1", "--serial", "--out", "bench"],
    "figures": ["figures", "--quick"],
    "columns": ["columns"],
    "report": ["report", "--quick"],
    "replay": ["replay", "counterexample.json"],
    "anchor": ["anchor", "--quick"],
    "check-tree": ["check-tree", "--kernel-tree", "linux"],
    "kernel-source": ["kernel-source", "--series", "6.1"],
}

#: run as ``python -c``: the CLI of ``python -m workbench``, but a command's ``run`` ends the process
_TO_RUN = """\
import importlib, os, runpy, sys
_real = importlib.import_module
def _hook(name, package=None):
    module = _real(name, package)
    if name.startswith("workbench.ui.commands."):
        module.run = lambda args: os._exit(0)
    return module
importlib.import_module = _hook
sys.argv = ["workbench", *sys.argv[1:]]
runpy.run_module("workbench", run_name="__main__", alter_sys=True)
"""


def _time(argv, env, cwd) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def _variants(tree: Path) -> dict:
    """name -> argv, for the package at *tree*."""
    py = sys.executable
    out = {"--version": [py, "-m", "workbench", "--version"], "--help": [py, "-m", "workbench", "--help"]}
    for name, words in COMMAND_LINES.items():
        out[name] = [py, "-c", _TO_RUN, *words]
    return out


def _extract(rev: str, into: Path) -> Path:
    """The ``workbench`` package at git revision *rev*, unpacked under *into*."""
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "workbench"], capture_output=True, check=True)
    archive = into / "src.tar"
    archive.write_bytes(tar.stdout)
    with tarfile.open(archive) as t:
        t.extractall(into, filter="data")
    return into


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default=None, metavar="REV", help="also time the package at this git revision")
    ap.add_argument("--rounds", type=int, default=5, help="fresh processes per variant (default 5)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from workbench.ui.cli import COMMANDS

    missing = sorted(set(COMMANDS) - set(COMMAND_LINES))
    if missing:
        ap.error(f"no command line for {', '.join(missing)}: add them to COMMAND_LINES")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        trees = {"after": ROOT}
        if args.before:
            trees["before"] = _extract(args.before, Path(tmp) / "before")
        base_env = {**os.environ, "WORKBENCH_DATA": str(data)}
        runs = {}  # (tree, variant) -> (argv, env)
        for label, tree in trees.items():
            env = {**base_env, "PYTHONPATH": str(tree)}
            for name, cmd in _variants(tree).items():
                runs[(label, name)] = (cmd, env)
        floor_cmd = ([sys.executable, "-c", "pass"], base_env)
        times = {key: [] for key in runs}
        floor = []
        for _ in range(args.rounds):
            floor.append(_time(*floor_cmd, cwd=tmp))
            for key, (cmd, env) in runs.items():
                times[key].append(_time(cmd, env, cwd=tmp))
    f = statistics.median(floor)
    print(f"floor: python -c pass  {f * 1e3:7.0f} ms  (median of {args.rounds})")
    labels = list(trees)
    print(f"{'variant':12s}" + "".join(f"{lab + ' ms':>14s}{lab + ' excess':>16s}" for lab in labels)
          + f"{'target':>10s}")
    for name in _variants(ROOT):
        target = 0.3 if name.startswith("--") else 0.5
        cells = ""
        for lab in labels:
            m = statistics.median(times[(lab, name)])
            cells += f"{m * 1e3:14.0f}{(m - f) * 1e3:16.0f}"
        print(f"{name:12s}{cells}{target * 1e3:10.0f}")


if __name__ == "__main__":
    main()
