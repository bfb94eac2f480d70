"""Sweep throughput: serial vs local processes vs a Dask LocalCluster, and the cache.

Prints points per second for each backend and its ratio to serial, then a
cold and a warm cached run, and the two numbers behind the local backend's
serial threshold (``PARALLEL_POINT_SECONDS``, ``PARALLEL_MIN_SECONDS`` of
:mod:`workbench.sweep.engine`): the seconds a point takes and the pool's
start-up (a cold pool's run minus a warm pool's), with what ``local`` chose. Every backend must return the identical frame
(checked). Run: ``python benchmarks/bench_sweep.py [--trials N]``.
"""

import argparse
import os
import sys
import tempfile
import time

import pandas as pd

from workbench.race.experiment import race_grid
from workbench.sweep.backends import dask_client
from workbench.sweep.engine import PARALLEL_MIN_SECONDS, PARALLEL_POINT_SECONDS, sweep

STRATEGIES = ["skip", "emulate_regs_caller", "emulate_new", "emulate_old", "spin", "stop_machine"]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    args = ap.parse_args(argv)
    grid = race_grid(strategy=STRATEGIES, cpus=[1, 2, 4, 8, 16, 32, 64, 128, 256], trials=args.trials)
    n, jobs = len(grid), os.cpu_count() or 1
    sweep(race_grid(trials=10), backend="serial", cache=False, progress=False)  # load the outcome table
    run = dict(cache=False, progress=False)
    serial, t_serial = timed(lambda: sweep(grid, backend="serial", **run))
    local, t_local = timed(lambda: sweep(grid, backend="local", jobs=jobs, parallel_above=0, **run))
    local2, t_local2 = timed(lambda: sweep(grid, backend="local", jobs=jobs, parallel_above=0, **run))
    auto, t_auto = timed(lambda: sweep(grid, backend="local", jobs=jobs, **run))

    def on_dask():
        with dask_client(jobs=jobs) as client:
            return sweep(grid, backend="dask", client=client, **run)

    dask, t_dask = timed(on_dask)
    for name, frame in (("local", local), ("dask", dask), ("auto", auto)):
        pd.testing.assert_frame_equal(serial, frame, check_exact=True, obj=name)
    print(f"{n} points x {args.trials} trials, {jobs} CPUs; identical frames on every backend")
    print(f"{'backend':28s} {'seconds':>8s} {'points/s':>9s} {'vs serial':>9s}")
    for name, t in (("serial", t_serial), ("local (cold loky pool)", t_local), ("local (warm pool)", t_local2),
                    ("dask LocalCluster (incl. start)", t_dask),
                    (f"local, default ({auto.attrs['sweep']['ran']})", t_auto)):
        print(f"{name:28s} {t:8.2f} {n / t:9.1f} {t_serial / t:9.2f}")
    print(f"a point: {1e3 * t_serial / n:.1f} ms serially (pool above {1e3 * PARALLEL_POINT_SECONDS:.0f} ms); "
          f"pool start-up about {max(t_local - t_local2, 0):.2f} s (pool above {PARALLEL_MIN_SECONDS:.1f} s "
          f"of serial work)")
    with tempfile.TemporaryDirectory() as root:
        _, cold = timed(lambda: sweep(grid, backend="local", jobs=jobs, cache_root=root, progress=False))
        _, warm = timed(lambda: sweep(grid, backend="local", jobs=jobs, cache_root=root, progress=False))
    print(f"cache: cold {cold:.2f} s, warm {warm:.3f} s (ratio {cold / warm:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
