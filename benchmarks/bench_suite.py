"""The test suite's time: wall and CPU seconds of a part of it, before and after, in one run.

Runs ``pytest`` on the given part (default: the unit part, what ``make unit``
runs: ``-m "not (browser or qemu)" -n 2 --dist loadscope``) for this
checkout and, with ``--before REV``, for the package and tests at git
revision REV (unpacked to a temporary directory), one after the other,
each on a data directory of its own that starts cold (as on CI's fresh
clone; ``--warm DIR`` copies DIR's ``cache/`` into each first). Prints,
for each, the number of tests collected (``--collect-only``: the counts
must match), the wall time, the CPU time (user + system of pytest and of
every process it waited for: what the suite costs whatever else the
machine is doing), the ratio of each to the other's and the slowest
tests (``--durations``). A busy machine stretches wall time; CPU seconds
are the steadier figure. Run from the checkout's root:
``python benchmarks/bench_suite.py [--before REV [--before-jobs N]] [--paths tests/x ...] [--marker EXPR]
[--jobs N]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _extract(rev: str, into: Path) -> Path:
    """The package, tests and project files at git revision *rev*, unpacked under *into*."""
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    (into / "src.tar").write_bytes(tar.stdout)
    with tarfile.open(into / "src.tar") as t:
        t.extractall(into, filter="data")
    return into


def _pytest(tree: Path, args: list, env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s, output) of ``pytest ARGS`` in *tree*."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=tree, env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), r.stdout + r.stderr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default=None, metavar="REV", help="also run the suite as it was at this revision")
    ap.add_argument("--paths", nargs="*", default=[], help="test paths (default: the whole tests/ directory)")
    ap.add_argument("--marker", default="not (browser or qemu)", help="-m expression (default: the unit part)")
    ap.add_argument("--jobs", default="2", help="pytest-xdist workers, 1 for a serial run (default 2)")
    ap.add_argument("--before-jobs", default=None, metavar="N",
                    help="the workers of the --before run, as its Makefile had them (default: --jobs)")
    ap.add_argument("--durations", type=int, default=20, help="slowest tests to print (default 20)")
    ap.add_argument("--warm", default=None, metavar="DIR", help="copy DIR/cache into each data directory first")
    args = ap.parse_args(argv)
    select = [*args.paths, "-m", args.marker]
    def dist(jobs: str) -> list[str]:
        return [] if jobs == "1" else ["-n", jobs, "--dist", "loadscope"]

    jobs = {"after": args.jobs, "before": args.before_jobs or args.jobs}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"after": ROOT}
        if args.before:
            trees["before"] = _extract(args.before, tmp / "before")
        for label, tree in trees.items():
            data = tmp / f"data-{label}"
            data.mkdir()
            if args.warm:
                shutil.copytree(Path(args.warm) / "cache", data / "cache")
            env = {**os.environ, "PYTHONPATH": str(tree), "WORKBENCH_DATA": str(data)}
            _, _, collected = _pytest(tree, ["--collect-only", *select], env)
            count = re.findall(r"(\d+)(?:/\d+)? tests? collected", collected)
            wall, cpu, out = _pytest(tree, [*select, *dist(jobs[label]), f"--durations={args.durations}"], env)
            summary = [ln for ln in out.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
            top = out.split("slowest", 1)[1].split("====", 1)[-1] if "slowest" in out else ""
            top = "\n".join(ln for ln in top.splitlines() if re.match(r"\s*\d+\.\d+s ", ln))
            results[label] = (count[-1] if count else "?", wall, cpu, summary[-1] if summary else "?", top)
    for label, (count, wall, cpu, summary, top) in results.items():
        print(f"{label}: {count} tests collected; {summary}")
        print(f"{label}: wall {wall:7.1f} s   cpu {cpu:7.1f} s   ({jobs[label]} worker(s))")
        print(f"{label}: slowest {args.durations}:\n{top}\n")
    if "before" in results:
        (cb, wb, pb, *_), (ca, wa, pa, *_) = results["before"], results["after"]
        print(f"after/before: wall {wa / wb:5.2f}   cpu {pa / pb:5.2f}   tests {ca} vs {cb}")


if __name__ == "__main__":
    main()
