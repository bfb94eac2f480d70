"""Warm ``make figures``: the whole job served from its caches, against ``python -c pass``.

Runs ``make figures`` (make's own check of the venv's stamp, then
``python -m workbench figures``) in a checkout whose data directory is
warm, several times, interleaved round by round with ``python -c pass``
(the floor) so that a busy machine slows both alike. The venv is this
interpreter, seen by make through a stand-in ``VENV`` directory (its
``bin/python`` runs ``sys.executable``, its stamps are fresh), so make
installs nothing. Prints the median wall time and the median CPU time
(user + system, of make and every process it waited for: what the job
costs whatever else the machine is doing) of each; the target is 1.5 s of
wall time on a quiet two-core machine.

``--before REV`` does the same for the package at git revision REV (its
own checkout in a temporary directory, with its own data directory: caches
are keyed by the code's version), in the same rounds. A data directory
that is not warm yet is warmed by one untimed cold run first (minutes);
``--data DIR`` / ``--before-data DIR`` reuse directories warmed earlier.
Every run's list of written files and the sweeps' numbers must be the same
(checked). Run from the checkout's root:
``python benchmarks/bench_figures_warm.py [--before REV] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, env, cwd=None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child and the processes it waited for, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd or env.get("WORKBENCH_DATA", "."), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stdout


def _warm(out: str) -> bool:
    """A run that computed nothing: every point and figure from the caches, or the job's record."""
    return ("0 computed" in out and "unchanged inputs" in out) or "nothing recomputed" in out


def _written(out: str) -> list:
    return sorted(line for line in out.splitlines() if line.startswith("wrote "))


def _same_numbers(a: Path, b: Path) -> None:
    """Every sweep frame and summary table of data directories *a* and *b* equal, bar the code version."""
    import pandas as pd

    for sub, read in (("sweeps", pd.read_parquet), ("summary", pd.read_csv)):
        names = sorted(p.name for p in (a / sub).glob("*.parquet" if sub == "sweeps" else "*.csv"))
        assert names == sorted(p.name for p in (b / sub).glob("*.parquet" if sub == "sweeps" else "*.csv"))
        for name in names:
            fa, fb = (read(d / sub / name).drop(columns=["code_version"]) for d in (a, b))
            pd.testing.assert_frame_equal(fa, fb, check_exact=True)


def _venv(into: Path) -> Path:
    """A stand-in venv directory for make: ``bin/python`` runs this interpreter; the stamps are fresh."""
    (into / "bin").mkdir(parents=True, exist_ok=True)
    py = into / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    py.chmod(0o755)
    for stamp in (".installed-base", ".installed"):
        (into / stamp).touch()
    return into


def _checkout(rev: str, into: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "--quiet", rev], check=True)
    return into


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default=None, metavar="REV", help="also time the package at this git revision")
    ap.add_argument("--data", default=None, help="a data directory to use for this checkout (warmed if needed)")
    ap.add_argument("--before-data", default=None, help="a data directory to use for --before (warmed if needed)")
    ap.add_argument("--rounds", type=int, default=5, help="warm runs per variant (default 5)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {"after": (ROOT, Path(args.data) if args.data else tmp / "data-after")}
        if args.before:
            tree = _checkout(args.before, tmp / "before")
            variants["before"] = (tree, Path(args.before_data) if args.before_data else tmp / "data-before")
        envs = {}
        for label, (tree, data) in variants.items():
            data.mkdir(parents=True, exist_ok=True)
            envs[label] = {**os.environ, "PYTHONPATH": str(tree), "WORKBENCH_DATA": str(data)}
        venv = _venv(tmp / "venv")
        # the Makefile's own rule: `figures: $(BASE)` then `$(PY) -m workbench figures`
        cmd = ["make", "--no-print-directory", "-s", "figures", f"VENV={venv}"]
        outputs = {}
        for label, env in envs.items():  # warm each (a no-op when it already is)
            t0 = time.perf_counter()
            _, _, out = _run(cmd, env, cwd=variants[label][0])
            if not _warm(out):
                print(f"{label}: warmed in {time.perf_counter() - t0:.0f} s", flush=True)
                _, _, out = _run(cmd, env, cwd=variants[label][0])  # (a job that keeps a record writes it then)
            outputs[label] = out
        floor, times = [], {label: [] for label in envs}
        for _ in range(args.rounds):
            floor.append(_run([sys.executable, "-c", "pass"], dict(os.environ))[:2])
            for label, env in envs.items():
                wall, cpu, out = _run(cmd, env, cwd=variants[label][0])
                assert _warm(out), out
                assert _written(out) == _written(outputs[label]), out  # the same files, run after run
                times[label].append((wall, cpu))
        if "before" in variants:  # the same files, named relative to each data directory
            assert ([w.replace(str(variants["before"][1]), "DATA") for w in _written(outputs["before"])]
                    == [w.replace(str(variants["after"][1]), "DATA") for w in _written(outputs["after"])])
            _same_numbers(variants["before"][1], variants["after"][1])
            print("before and after: the same sweeps and summary tables (all but the code_version column)")
    fw, fc = statistics.median(w for w, _ in floor), statistics.median(c for _, c in floor)
    print(f"floor: python -c pass   wall {fw:6.2f} s   cpu {fc:6.2f} s   (median of {args.rounds})")
    for label, rows in times.items():
        w, c = statistics.median(x for x, _ in rows), statistics.median(y for _, y in rows)
        print(f"{label:6s} warm figures  wall {w:6.2f} s   cpu {c:6.2f} s   "
              f"wall/floor {w / fw:5.1f}   target wall 1.50 s")


if __name__ == "__main__":
    main()
