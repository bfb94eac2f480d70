"""Set-up: what the venv of a fresh clone costs before ``make figures`` can start.

Clones this repository (its committed HEAD) into a temporary directory and
times the install step of ``make figures`` there with every download cache
off (``PIP_NO_CACHE_DIR=1``, ``UV_NO_CACHE=1``: a fresh machine), against
the floor ``python -m venv`` (what any set-up pays). ``--before REV`` does
the same for the Makefile and pyproject.toml at git revision REV in the
same run (it installed '.[dev]' with pip for every target). ``--with-job``
also times the cold ``make figures`` job after the install (minutes).
Needs the network (PyPI), as ``make`` does. Run from the checkout's root:
``python benchmarks/bench_setup.py [--before REV] [--with-job]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(argv, cwd, env) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed in {cwd}:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default=None, metavar="REV", help="also time the set-up at this git revision")
    ap.add_argument("--with-job", action="store_true", help="also time the cold figures job after the install")
    args = ap.parse_args(argv)
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "UV_NO_CACHE": "1", "PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    revs = {"after": "HEAD", **({"before": args.before} if args.before else {})}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        floor = _timed([sys.executable, "-m", "venv", str(tmp / "floor-venv")], tmp, env)
        for label, rev in revs.items():
            tree = tmp / label
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(tree)], check=True)
            subprocess.run(["git", "-C", str(tree), "checkout", "--quiet", rev], check=True)
            makefile = (tree / "Makefile").read_text()
            stamp = ".venv/.installed-base" if ".installed-base" in makefile else ".venv/.installed"
            install = _timed(["make", f"PYTHON={sys.executable}", stamp], tree, env)
            job = _timed(["make", f"PYTHON={sys.executable}", "figures"], tree,
                         {**env, "WORKBENCH_DATA": str(tree / "data")}) if args.with_job else None
            rows[label] = (stamp, install, job)
            print(f"{label}: make {stamp}  {install:6.1f} s" + (f";  make figures (cold job) {job:6.1f} s"
                                                                if job is not None else ""), flush=True)
    print(f"floor: python -m venv  {floor:6.1f} s")
    for label, (_stamp, install, job) in rows.items():
        total = install + (job or 0.0)
        print(f"{label:6s} install {install:6.1f} s ({install / floor:5.1f} x floor)"
              + (f"  cold make figures {total:6.1f} s (target 60 s on two cores)" if job is not None else ""))
    if "before" in rows:
        print(f"install before/after: {rows['before'][1] / rows['after'][1]:.1f} x")


if __name__ == "__main__":
    main()
