"""Sweeps: run a grid of configurations, return one tidy pandas frame.

One function, :func:`sweep`, runs every point of a :class:`Grid` through an
:class:`~workbench.sweep.experiment.Experiment` (the one passed, else the
grid's own: a grid from :func:`workbench.race.experiment.race_grid` carries
the race simulator; this engine holds no experiment of its own) and returns a frame
with one row per point (or more, if an experiment returns several): the
point's parameters first, then what the experiment measured.

Where the work runs (``backend``, :mod:`workbench.sweep.backends`):

* ``"local"`` (default): local processes through joblib's loky backend, when
  the points are worth it: the first point runs in this process and, if it
  took less than :data:`PARALLEL_POINT_SECONDS` or all the points would take
  less than :data:`PARALLEL_MIN_SECONDS` one after the other, the rest run
  here too (a pool's start-up would cost more than it saves);
* ``"dask"``: a ``dask.distributed`` cluster, either at ``scheduler``
  (``tcp://HOST:PORT``), an existing ``client``, or a fresh ``LocalCluster``;
* ``"serial"``: this process (notebooks, widgets, tests).

The backend never changes a number. Each point draws its random numbers from
``SeedSequence(seed, spawn_key=(stream,))``, where *seed* is the sweep's one
seed and *stream* is spawned from a hash of the point's own parameters (not
from its position in the grid). So a point gives the same numbers whatever
grid it is in, whatever chunk or worker runs it, on any backend, and two
figures that share a point share its cached result.

Every finished point is cached (:class:`~workbench.sweep.cache.SweepCache`,
in :mod:`workbench.sweep.cache`: atomic, checksummed entries keyed by the
experiment, its parameters, the seed and the code version), so an
interrupted sweep keeps what it finished and a rerun computes only the
missing points. Fresh results take the same JSON round trip as a cache
entry, so a cached frame is bit-identical to a freshly computed one.
Frames are saved and loaded as Parquet (:func:`save_frame`,
:func:`load_frame`).

Bad input (an unknown parameter, an empty range, a value the experiment
refuses) raises :class:`workbench.base.errors.ConfigError` with a one-line
message before any work starts.

"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import check_name, data_subdir
from workbench.base.provenance import provenance, stamp
from workbench.base.store import check_writable, read_regular, write_atomic
from workbench.base.vocabulary import check_param
from workbench.sweep.backends import BACKENDS, check_scheduler, execute_chunks, run_chunk
from workbench.sweep.cache import SweepCache, canonical_json, plain_json
from workbench.sweep.experiment import Experiment, FunctionExperiment

__all__ = ["Experiment", "FunctionExperiment", "Grid", "MAX_POINTS_UNFORCED", "MAX_TRIALS_UNFORCED",
           "PARALLEL_MIN_SECONDS", "PARALLEL_POINT_SECONDS", "SweepCache", "check_grid_size", "load_frame",
           "parse_assignments", "point_stream", "save_frame", "sweep", "sweep_path"]

#: The local backend runs points in this process when one takes less than this
#: (seconds): a chunk of such points costs about as much to send as to compute.
#: Race points take 15-40 ms, and chunks of up to 16 of them amortise the
#: dispatch: a warm pool ran 54 of 15 ms 2.15x faster than serial on the 2-core
#: machine, and the figures job's five sweeps (706 points) took 15.8 s in the
#: pool against 30.7 s serially (benchmarks/bench_sweep.py prints both sides).
PARALLEL_POINT_SECONDS = 0.005
#: ... or when all the points together would take less than this (seconds)
#: serially: about twice a loky pool's start-up there (workers importing the
#: workbench and loading the outcome tables, measured by bench_sweep.py).
PARALLEL_MIN_SECONDS = 4.0
#: the most points a sweep runs without being forced (``force=True``, ``--force``)
MAX_POINTS_UNFORCED = 10_000
#: the most Monte Carlo trials (summed over the points) a sweep runs without being forced:
#: about an hour of race points on one core
MAX_TRIALS_UNFORCED = 10**9
_LOG = logging.getLogger("workbench.sweep.engine")


def check_grid_size(points: int, *, force: bool = False) -> int:
    """Refuse, before any point is made, a grid of more than ``RANGES["points"]`` points, or of more
    than :data:`MAX_POINTS_UNFORCED` unless *force*; return *points*."""
    check_param("points", points, label="grid points")
    if points > MAX_POINTS_UNFORCED and not force:
        raise ConfigError(f"grid: {points} points, more than {MAX_POINTS_UNFORCED}; narrow the grid or pass "
                          "--force to run them all")
    return points


def _check_trials(points: list[dict], force: bool) -> None:
    """Refuse more than :data:`MAX_TRIALS_UNFORCED` trials in all unless *force*."""
    total = sum(int(p.get("trials") or 0) for p in points)
    if total > MAX_TRIALS_UNFORCED and not force:
        raise ConfigError(f"grid: {total:.3g} Monte Carlo trials in all, more than {MAX_TRIALS_UNFORCED:.0e}; "
                          "lower trials, narrow the grid or pass --force")


# -- seeds ------------------------------------------------------------------------------

def point_stream(experiment: str, params: dict) -> int:
    """The 63-bit stream of a point: its child key under the sweep's SeedSequence.

    A hash of the experiment name and the point's (normalised) parameters,
    and nothing else, so it is the same in every grid, chunk, worker and
    backend, and unchanged by an edit of the code.
    """
    digest = hashlib.sha256(canonical_json({"experiment": experiment, "params": params})).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# -- grids ----------------------------------------------------------------------------

class Grid:
    """The Cartesian product of parameter ranges, as a list of points.

    *axes* maps a parameter name to its values (a list, tuple, range or
    array; a scalar or a string is one value). Points come out in product
    order, the first axis varying slowest. ``Grid.concat`` joins grids
    (e.g. per-value derived parameters). Raises :class:`ConfigError` for an
    empty range or a parameter name that is not a valid identifier; unknown
    names are refused by the experiment when the sweep starts.
    """

    def __init__(self, axes=None, *, experiment: Experiment | None = None, **more):
        self.experiment = experiment  # what sweep() runs when not told otherwise
        axes = {**dict(axes or {}), **more}
        self.axes = {}
        for name, values in axes.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"grid: parameter names must be identifiers, got {name!r}")
            if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
                values = [values]
            values = [plain_json(v) for v in values]
            if not values:
                raise ConfigError(f"{name}: empty range; give at least one value")
            self.axes[name] = values
        self._extra = []  # points of grids joined by concat()

    @classmethod
    def concat(cls, grids):
        """One grid holding the points of each of *grids*, in order."""
        grids = list(grids)
        check_param("points", sum(len(g) for g in grids), label="grid points")  # before making any
        kinds = {id(g.experiment): g.experiment for g in grids}
        out = cls(experiment=next(iter(kinds.values())) if len(kinds) == 1 else None)
        out._extra = [p for g in grids for p in g.points()]
        if not out._extra:
            raise ConfigError("grid: empty range; concat() was given no points")
        return out

    def points(self) -> list[dict]:
        """Every point as a dict of parameter values."""
        if self._extra:
            return [dict(p) for p in self._extra]
        names = list(self.axes)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.axes.values())]

    def __len__(self):
        return len(self._extra) if self._extra else math.prod(len(v) for v in self.axes.values())

    def __repr__(self):
        if self._extra:
            return f"Grid(<{len(self._extra)} points>)"
        return "Grid(" + ", ".join(f"{k}={v!r}" for k, v in self.axes.items()) + ")"


def sweep(grid, experiment=None, *, seed=0, backend="local", jobs=None, scheduler=None, client=None,
          processes=True, chunk_size=None, cache=True, cache_root=None, progress=True, desc=None,
          save=None, parallel_above=None, force=False) -> pd.DataFrame:
    """Run every point of *grid* through *experiment*; one tidy frame.

    *grid* is a :class:`Grid` or a list of point dicts; *experiment*
    defaults to the grid's own (``grid.experiment``). Every point is normalised (defaults filled in,
    values checked) before any work starts. Cached points are read from
    ``data/cache/sweep`` (*cache_root*); the rest run on *backend*
    (``local``: *jobs* loky processes, default all CPUs; ``dask``: the
    cluster at *scheduler*, *client*, or a LocalCluster of *jobs* workers;
    ``serial``), in chunks of *chunk_size* points (default: 1 when serial,
    else a few chunks per worker), under a ``tqdm.auto`` progress bar; each
    finished chunk's points are cached as soon as the chunk returns. Results are
    in grid order whatever the backend. *save* names a Parquet file to write
    (a bare name goes to ``data/sweeps/<name>.parquet``).

    With ``backend="local"`` the first point to compute is timed in this
    process and the rest go to the pool only if that point took at least
    *parallel_above* seconds (default :data:`PARALLEL_POINT_SECONDS`; 0
    always uses the pool) and all of them would take at least
    :data:`PARALLEL_MIN_SECONDS` serially; the numbers do not depend on it.

    The grid is counted before any point is made: more than
    ``RANGES["points"]`` points are refused, and more than
    :data:`MAX_POINTS_UNFORCED` points or :data:`MAX_TRIALS_UNFORCED` trials
    in all unless *force*.

    A point listed twice is computed once. The frame's ``attrs["sweep"]``
    holds ``points``, ``cached``, ``computed`` (distinct points run), ``corrupt`` (entries that failed their check and were
    recomputed), ``backend``, ``ran`` (``"serial"`` or ``"parallel"``: where the points actually ran) and ``seed``. Raises :class:`ConfigError` for
    an unknown parameter, an empty range, a bad value, backend, jobs,
    chunk size or seed; ``KeyboardInterrupt`` passes through with the
    finished points cached.
    """
    # 1. normalise: every option and every point checked before any work
    experiment = _experiment_of(grid, experiment)
    seed, jobs, chunk_size, parallel_above = _check_options(backend, seed, jobs, chunk_size, parallel_above,
                                                            scheduler, client)
    if isinstance(grid, Grid):
        check_grid_size(len(grid), force=force)  # counted before a single point is made
    raw = grid.points() if isinstance(grid, Grid) else [dict(p) for p in grid]
    if not raw:
        raise ConfigError("grid: empty range; the sweep has no points")
    check_grid_size(len(raw), force=force)
    store = SweepCache(cache_root) if cache else None
    # 2. look up: the same points, seed and code as a finished sweep whose point entries are all as it
    # left them give its records, without normalising or reading every point again
    whole = store.sweep_key(experiment.name, raw, seed) if store is not None else None
    served = store.get_sweep(whole) if store is not None else None
    if served is not None:
        if save is not None:
            check_writable(sweep_path(save), what="out")
        return _frame(served, experiment, seed, save, {
            "points": len(raw), "cached": len(raw), "computed": 0, "corrupt": 0, "backend": backend,
            "ran": "serial" if backend == "serial" else "parallel", "seed": seed})
    points = [experiment.normalize(p) for p in raw]  # every error before any work
    _check_trials(points, force)
    if save is not None:
        check_writable(sweep_path(save), what="out")
    found = _look_up(store, experiment, points, seed)
    # 3. run what the cache did not have
    ran, stale = "serial" if backend == "serial" else "parallel", set()
    if found.todo:
        ran, stale = _run(experiment, points, found, store, seed, backend=backend, jobs=jobs, scheduler=scheduler,
                          client=client, processes=processes, chunk_size=chunk_size,
                          parallel_above=parallel_above, progress=progress, desc=desc)
    # 4. assemble: the frame in grid order, the whole sweep cached
    results = found.results
    for i, copies in found.twins.items():
        for j in copies:
            results[j] = results[i]
    records = [{**experiment.columns(p), **row} for p, rows in zip(points, results, strict=True) for row in rows]
    if store is not None and not stale:
        records = plain_json(records)  # as the whole entry gives them back: the same frame either way
        store.put_sweep(whole, experiment.name, records, found.keys)
    return _frame(records, experiment, seed, save, {
        "points": len(points), "cached": found.cached, "computed": len(found.todo), "corrupt": found.corrupt,
        "backend": backend, "ran": ran, "seed": seed})


def _experiment_of(grid, experiment: Experiment | None) -> Experiment:
    """*experiment*, or the grid's own; ConfigError when neither names one."""
    if experiment is None:
        experiment = getattr(grid, "experiment", None)
        if experiment is None:
            raise ConfigError("experiment: this grid names no experiment; pass one "
                              "(e.g. workbench.race.experiment.RACE)")
    return experiment


def _check_options(backend: str, seed, jobs, chunk_size, parallel_above, scheduler: str | None,
                   client) -> tuple[int, int | None, int | None, float]:
    """``(seed, jobs, chunk_size, parallel_above)`` checked; ConfigError for a bad value or combination."""
    check_choice("backend", backend, BACKENDS)
    seed = check_param("seed", seed)
    if jobs is not None:
        jobs = check_param("jobs", jobs)
    if chunk_size is not None:
        chunk_size = int(check_range("chunk_size", chunk_size, 1, 10**6, integer=True))
    parallel_above = PARALLEL_POINT_SECONDS if parallel_above is None else \
        check_range("parallel_above", parallel_above, 0, 10**6)
    if scheduler is not None and backend != "dask":
        raise ConfigError(f"scheduler: a scheduler address needs backend 'dask', not {backend!r}")
    if client is not None and backend != "dask":
        raise ConfigError(f"client: a Dask client needs backend 'dask', not {backend!r}")
    if scheduler is not None and client is None:
        check_scheduler(scheduler)
    return seed, jobs, chunk_size, parallel_above


@dataclass
class _Found:
    """What the point cache gave: *results* (None where a point must run), the *todo* triples
    ``(index, point, stream)``, each point's cache *keys*, *twins* (index -> later copies of the
    same point), and the counts of *cached* and *corrupt* entries."""

    results: list
    todo: list[tuple[int, dict, int]]
    keys: list
    twins: dict[int, list[int]]
    cached: int
    corrupt: int


def _look_up(store: SweepCache | None, experiment: Experiment, points: list[dict], seed: int) -> _Found:
    """Each point in the cache; a point listed twice is looked up (and later run) once."""
    results, todo, corrupt, twins = [None] * len(points), [], 0, {}
    keys = [store.key(experiment.name, p, seed) if store is not None else None for p in points]
    first = {}
    for i, (p, key) in enumerate(zip(points, keys, strict=True)):
        if key is not None and key in first:  # the same point twice: compute it once
            twins.setdefault(first[key], []).append(i)
            continue
        first[key] = i
        got = store.get(key) if store is not None else None
        if got == "corrupt":
            corrupt += 1
            got = None
        if got is None:
            todo.append((i, p, point_stream(experiment.name, experiment.stream_params(p))))
        else:
            results[i] = got
    cached = len(points) - len(todo) - sum(len(v) for i, v in twins.items() if results[i] is None)
    return _Found(results, todo, keys, twins, cached, corrupt)


def _run(experiment: Experiment, points: list[dict], found: _Found, store: SweepCache | None, seed: int, *,
         backend: str, jobs: int | None, scheduler: str | None, client, processes: bool, chunk_size: int | None,
         parallel_above: float, progress: bool, desc: str | None) -> tuple[str, set]:
    """Run *found*'s todo on *backend*, each finished chunk cached at once, into ``found.results``;
    ``(where the points ran, the code versions of workers that ran other code)``."""
    from tqdm.auto import tqdm  # start-up: tqdm, only when a sweep runs

    todo, results, twins = found.todo, found.results, found.twins
    ran, stale = "serial" if backend == "serial" else "parallel", set()
    context = experiment.prepare([p for _, p, _ in todo], progress=progress)
    workers = jobs or os.cpu_count() or 1

    def batches():
        nonlocal ran
        rest, how = todo, backend
        if backend == "local" and parallel_above > 0:
            t = time.perf_counter()
            yield run_chunk(experiment, rest[:1], seed, context)
            per_point, rest = time.perf_counter() - t, rest[1:]
            if per_point < parallel_above or per_point * len(todo) < PARALLEL_MIN_SECONDS:
                how, ran = "serial", "serial"
        # serial: one point per chunk, so each is cached the moment it is done;
        # workers: a few chunks each, to amortise dispatch yet balance the load
        size = chunk_size or (1 if how == "serial" else
                              max(1, min(16, math.ceil(len(rest) / (4 * workers)))))
        chunks = [rest[k:k + size] for k in range(0, len(rest), size)]
        if how == "local" and len(chunks) == 1:
            ran = "serial"  # execute_chunks runs a single chunk here
        if chunks:
            yield from execute_chunks(experiment, chunks, seed, context, how, jobs, scheduler, client, processes)

    totals: dict = {}  # the experiment's running counts, shown beside the bar
    with tqdm(total=len(points), initial=found.cached, desc=desc or f"sweep {experiment.name}",
              unit="pt", disable=not progress, leave=False, file=sys.stderr) as bar:
        for version, done in batches():
            for i, rows in done:
                results[i] = rows
                if store is not None and version in (None, store.version):
                    store.put(found.keys[i], experiment.name, points[i], rows)
                elif store is not None:  # a worker ran other code: its entry is keyed by that code
                    other = store.for_version(version)
                    other.put(other.key(experiment.name, points[i], seed), experiment.name, points[i], rows)
                    stale.add(version)
                for name, n in experiment.tally(rows).items():
                    totals[name] = totals.get(name, 0) + n
            if totals:
                bar.set_postfix(totals, refresh=False)
            bar.update(len(done) + sum(len(twins.get(i, ())) for i, _ in done))
        if totals:
            bar.set_postfix(totals)  # the final totals, drawn whatever the refresh interval
    if stale:
        _LOG.warning("sweep: workers ran code %s, not the sources' %s; their results are cached under "
                     "their own version (restart the workers to use the edited code)",
                     ", ".join(sorted(stale)), store.version)
        if backend == "local":  # the next sweep gets fresh workers
            # start-up: joblib's cost is paid only by parallel runs
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(wait=True, kill_workers=True)
    return ran, stale


def _frame(records, experiment, seed, save, stats) -> pd.DataFrame:
    """The sweep's frame from its records: provenance stamped, *stats* in ``attrs["sweep"]``, saved."""
    frame = pd.DataFrame.from_records(records)
    # where the numbers came from, as columns and attrs (save_frame writes both); the
    # figures job restamps grid and run with its own names
    frame = stamp(frame, provenance(
        seed=seed, grid=Path(str(save)).stem if save else experiment.name, run="custom",
        scenario=sorted({str(v) for v in frame["scenario"]}) if "scenario" in frame else None,
        entry=sorted({str(v) for v in frame["entry"]}) if "entry" in frame else None))
    frame.attrs["sweep"] = stats
    if save is not None:
        save_frame(frame, save)
    return frame


# -- results on disk ----------------------------------------------------------------------

def sweep_path(name) -> Path:
    """``data/sweeps/<name>.parquet`` for a bare name; a path ending in ``.parquet`` as is.

    A bare name is one file name component (no ``/``, at most
    :data:`~workbench.base.paths.MAX_NAME_BYTES` bytes), so it never leaves
    ``data/sweeps``; anything else must be a path ending in ``.parquet``
    (``--out /dev/null`` is refused, not turned into ``/dev/null.parquet``).
    """
    text = str(name)
    if not text.strip():
        raise ConfigError("out: empty name; give a file name (a bare name goes to data/sweeps/<name>.parquet)")
    if "\0" in text:
        raise ConfigError("out: the name has a NUL byte; give a plain file name")
    if text.rstrip().endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise ConfigError(f"out: {text!r} is a directory; give a file name")
    p = Path(text)
    if p.suffix == ".parquet":
        check_name("out", p.name)
        if p.is_dir():
            raise ConfigError(f"out: {text!r} is a directory; give a file name")
        return p
    if "/" in text or os.sep in text:
        raise ConfigError(f"out: {text!r} is neither a bare name (written to data/sweeps/NAME.parquet) nor a "
                          "path ending in .parquet")
    check_name("out", f"{text}.parquet")
    return data_subdir("sweeps") / f"{text}.parquet"


def save_frame(frame: pd.DataFrame, name) -> Path:
    """Write *frame* as Parquet (atomically) to :func:`sweep_path` (*name*); return the path.

    The frame's provenance (``attrs["provenance"]``, see
    :mod:`workbench.base.provenance`) is written twice: into the Parquet
    schema metadata (``pd.read_parquet`` restores it as ``attrs``, with the
    column units) and as columns. Run statistics (``attrs["sweep"]``: cache
    hits) are not written, so equal data give equal files.
    """
    path = sweep_path(name)
    prov = frame.attrs.get("provenance")
    if prov:
        plain = stamp(frame, prov)
    else:
        plain = frame.copy()
        plain.attrs = {}  # pandas would store attrs (cache statistics): the same data, the same bytes
    buf = io.BytesIO()
    plain.to_parquet(buf, index=False)
    return write_atomic(path, buf.getvalue(), what="out")


def load_frame(name) -> pd.DataFrame:
    """Read a frame written by :func:`save_frame`. Raises :class:`ConfigError` if missing."""
    path = sweep_path(name)
    try:
        data = read_regular(path)
    except OSError as exc:
        raise ConfigError(f"sweep: cannot read {str(path)!r} ({exc.strerror or exc}); give a saved sweep") from None
    if data is None:
        raise ConfigError(f"sweep: no saved sweep {str(name)!r} at {path}")
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise ConfigError(f"sweep: {str(path)!r} is not a readable Parquet file ({type(exc).__name__})") from None


def parse_assignments(items, experiment: Experiment) -> Grid:
    """A :class:`Grid` from ``NAME=V1,V2,...`` strings (the command line's ``--set``).

    Values are parsed as JSON where they can be (numbers, true/false, null),
    else kept as strings; ``1e3:1e7:5`` is a log-spaced range of 5 values.
    Raises :class:`ConfigError` for a malformed item or an unknown name.
    """
    axes = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ConfigError(f"grid: expected NAME=V1,V2,..., got {item!r}")
        if name in axes:
            raise ConfigError(f"{name}: given twice; put every value in one --set {name}=V1,V2,...")
        if name not in experiment.parameters:
            raise ConfigError(f"{name}: unknown sweep parameter for {experiment.name}; choose from "
                              + ", ".join(experiment.parameters))
        if text.count(":") == 2:
            try:
                lo, hi, n = text.split(":")
                lo, hi, n = float(lo), float(hi), int(n)
            except ValueError:
                raise ConfigError(f"{name}: expected LO:HI:COUNT, got {text!r}") from None
            check_param("points", n, label=f"{name} count")
            check_range(f"{name} bounds", lo, 1e-300, 1e300)
            check_range(f"{name} bounds", hi, lo, 1e300)
            values = [float(v) for v in np.geomspace(lo, hi, n)]
        else:
            values = []
            for v in (t.strip() for t in text.split(",")):
                if not v:
                    continue
                try:
                    values.append(json.loads(v))
                except ValueError:
                    values.append(v)
        if not values:
            raise ConfigError(f"{name}: empty range; give at least one value")
        axes[name] = values
    return Grid(axes, experiment=experiment)
