"""Same configuration and seed, the same bits: whatever the backend, the worker count, the BLAS
thread count, or the configuration's position in a list (issue 13, item 6).

Every run of the matrix saves its frame as Parquet; the files must be byte-identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.base.numeric import fdot
from workbench.race.experiment import race_grid
from workbench.race.outcomes import load_outcomes
from workbench.race.simulator import RaceConfig, simulate_many
from workbench.race.workload import Workload
from workbench.race.timing import Timing
from workbench.sweep import engine as sw
from workbench.sweep.backends import dask_client

ROOT = Path(__file__).resolve().parents[2]
# spin and per-site windows exercise every product of the model; 40,000 tail sites a long one
GRID = dict(strategy=["skip", "spin"], batching=["per_site", "batched"], cpus=[4, 64], trials=300)

SCRIPT = textwrap.dedent("""
    import sys
    from workbench.race.experiment import race_grid
    from workbench.sweep.engine import save_frame, sweep
    grid = race_grid(**{grid!r})
    save_frame(sweep(grid, seed=5, backend="serial", cache=False, progress=False), sys.argv[1])
""")


def _bytes(frame, path):
    return sw.save_frame(frame, path).read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    load_outcomes("seed", "v5.3")  # the outcome table once, before the clock of any backend
    d = tmp_path_factory.mktemp("det")
    frame = sw.sweep(race_grid(**GRID), seed=5, backend="serial", cache=False, progress=False)
    return frame, _bytes(frame, d / "serial.parquet"), d


@pytest.mark.parametrize("backend, jobs", [("local", 1), ("local", 2)])
def test_local_jobs_give_the_serial_bytes(backend, jobs, reference):
    frame, want, d = reference
    got = sw.sweep(race_grid(**GRID), seed=5, backend=backend, jobs=jobs, chunk_size=1, cache=False,
                   progress=False)
    assert _bytes(got, d / f"{backend}{jobs}.parquet") == want


@pytest.mark.parametrize("workers", [1, 2])
def test_dask_workers_give_the_serial_bytes(workers, reference):
    frame, want, d = reference
    with dask_client(jobs=workers, processes=True) as client:
        got = sw.sweep(race_grid(**GRID), seed=5, backend="dask", client=client, chunk_size=1, cache=False,
                       progress=False)
    assert _bytes(got, d / f"dask{workers}.parquet") == want


@pytest.mark.parametrize("threads", ["1", "2"])
def test_blas_threads_give_the_serial_bytes(threads, reference):
    frame, want, d = reference
    out = d / f"blas{threads}.parquet"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(grid=GRID), str(out)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_bytes() == want


def test_list_position_does_not_change_a_point(reference):
    frame, want, d = reference
    reverse = {k: (list(reversed(v)) if isinstance(v, list) else v) for k, v in GRID.items()}
    got = sw.sweep(race_grid(**reverse), seed=5, backend="serial", cache=False, progress=False)
    keys = ["strategy", "batching", "cpus"]
    got = got.sort_values(keys).reset_index(drop=True)
    ref = frame.sort_values(keys).reset_index(drop=True)
    assert _bytes(got, d / "rev.parquet") == _bytes(ref, d / "ref_sorted.parquet")
    alone = sw.sweep(race_grid(strategy="spin", batching="per_site", cpus=64, trials=300), seed=5,
                     backend="serial", cache=False, progress=False)
    row = frame[(frame.strategy == "spin") & (frame.batching == "per_site") & (frame.cpus == 64)]
    assert _bytes(alone, d / "alone.parquet") == _bytes(row.reset_index(drop=True), d / "row.parquet")


def test_simulate_many_streams_do_not_depend_on_the_list():
    """`simulate --cpus 64` and `--cpus 16,64` give the 64-CPU point the same numbers."""
    outcomes = load_outcomes("seed", "v5.3")
    cfg = lambda n: RaceConfig("seed", "skip", None, n, Workload(), Timing())  # noqa: E731
    one = simulate_many([cfg(64)], outcomes, 500, seed=3)
    two = simulate_many([cfg(16), cfg(64)], outcomes, 500, seed=3)
    pd.testing.assert_frame_equal(one, two.iloc[[1]].reset_index(drop=True), check_exact=True)


def test_fdot_sums_in_one_order_whatever_the_shape():
    rng = np.random.default_rng(0)
    a, m = rng.random(100_003), rng.random((7, 100_003))
    assert fdot(a, a) == pytest.approx(float(a @ a), rel=1e-12)
    np.testing.assert_allclose(fdot(m, a), m @ a, rtol=1e-12)
    np.testing.assert_allclose(fdot(a[:7], m), a[:7] @ m, rtol=1e-12)
    # a row of a product is the product of the row: no blocking across rows
    assert fdot(m, a)[3] == fdot(m[3], a)
