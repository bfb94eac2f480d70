"""``python -m workbench sweep``: run a grid of race-simulator configurations.

Each ``--set NAME=V1,V2,...`` adds an axis (``NAME=LO:HI:N`` is a log-spaced
range); every combination is one point. Points run in local processes by
default, on a Dask LocalCluster with ``--dask local``, on a running cluster
with ``--scheduler tcp://HOST:PORT``, or here with ``--serial``. Finished
points are cached, so an interrupted sweep resumes. The frame goes to
``data/sweeps/<--out>.parquet`` (with its provenance as columns and in the
Parquet metadata) and the path is printed; an existing file is not
replaced unless ``--force`` is given (checked before any work). A summary of
the main metrics is printed, times in human units.

Examples::

    int3-workbench sweep --set strategy=skip,spin --set cpus=1,8,64 --out spin_vs_skip
    int3-workbench sweep --set sync_round_ns=1e3:1e7:5 --set cpus=24 --serial --force
"""

from workbench.base.errors import ConfigError
from workbench.ui.commands.figures import backend_of
from workbench.ui.format import human_table

__all__ = ["configure", "run"]

_SHOWN = ("trapped", "violations", "dropped_tracer", "dropped_livepatch", "stall_ns", "patch_ns", "ipis")


def configure(parser):
    """Add the sweep options to *parser*."""
    from workbench.race.experiment import RACE_PARAMETERS

    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="a swept parameter (repeatable): " + ", ".join(RACE_PARAMETERS))
    parser.add_argument("--seed", type=int, default=0, help="the one seed every point's stream is spawned from")
    parser.add_argument("--jobs", type=int, default=None, help="local worker processes (default: every CPU)")
    parser.add_argument("--dask", choices=("local",), default=None, help="run on a Dask LocalCluster")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="run on the Dask cluster at this scheduler")
    parser.add_argument("--serial", action="store_true", help="run in this process")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the point cache")
    parser.add_argument("--out", default="sweep", help="name of the Parquet file under data/sweeps (default sweep)")
    parser.add_argument("--force", action="store_true", help="replace an existing data/sweeps/<--out>.parquet")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    """Parse the grid, sweep, save, print a summary."""
    from workbench.race.experiment import RACE_PARAMETERS
    from workbench.race.experiment import RACE
    from workbench.base.store import check_writable
    from workbench.sweep.engine import parse_assignments, save_frame, sweep, sweep_path

    if not args.set:
        raise ConfigError("set: give at least one NAME=V1,V2,... (parameters: " + ", ".join(RACE_PARAMETERS) + ")")
    grid = parse_assignments(args.set, RACE)
    backend, scheduler = backend_of(args)
    path = sweep_path(args.out)
    check_writable(path, what="out")  # a directory, an unwritable place: said before "exists"
    if path.exists() and not args.force:
        raise ConfigError(f"out: {path} exists; choose another --out NAME or pass --force to replace it")
    frame = sweep(grid, seed=args.seed, backend=backend, jobs=args.jobs, scheduler=scheduler,
                  cache=not args.no_cache, progress=not args.quiet)
    frame.attrs["provenance"]["grid"] = path.stem
    written = save_frame(frame, path)
    axes = [a for a in grid.axes]
    cols = axes + [f"{m}_mean" for m in _SHOWN]
    print(human_table(frame[cols]))
    s = frame.attrs["sweep"]
    print(f"{s['points']} points: {s['cached']} from cache, {s['computed']} computed"
          + (f", {s['corrupt']} corrupted entries recomputed" if s["corrupt"] else ""))
    print(f"wrote {written}")
    return 0
