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
    int3-workbench sweep --config explorer.toml --out explorer

--config reads a TOML file with one [[grid]] table per sub-grid (a list
value is an axis; the explorer's "save configuration" writes one), the
same points the explorer showed.
"""

import json
from pathlib import Path

from workbench.base.errors import ConfigError
from workbench.base.inputs import parse_document, read_input
from workbench.base.store import check_writable
from workbench.race.parameters import RACE_PARAMETERS
from workbench.base.vocabulary import write_columns
from workbench.ui.commands.backend import add_backend_options, backend_of

__all__ = ["configure", "grid_from_toml", "run"]

_SHOWN = ("trapped", "violations", "dropped_tracer", "dropped_livepatch", "stall_ns", "patch_ns", "ipis")


def configure(parser):
    """Add the sweep options to *parser*."""
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="a swept parameter (repeatable): " + ", ".join(RACE_PARAMETERS))
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="the grid from a TOML file of [[grid]] tables (as the explorer saves)")
    parser.add_argument("--seed", type=int, default=0, help="the one seed every point's stream is spawned from")
    add_backend_options(parser, "the points")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the point cache")
    parser.add_argument("--out", default="sweep", help="name of the Parquet file under data/sweeps (default sweep)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing data/sweeps/<--out>.parquet; run a grid of more than 10,000 points")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def grid_from_toml(path, force=False):
    """The race grid of a TOML file's ``[[grid]]`` tables (each one :func:`race_grid`, concatenated).

    Raises :class:`ConfigError` for a missing or malformed file, no
    ``[[grid]]`` table, or an unknown parameter.
    """
    from workbench.race.experiment import race_grid  # start-up: pandas and the simulator, not for parsing
    from workbench.sweep.engine import Grid, check_grid_size  # start-up: pandas, not for parsing

    p = Path(path)
    doc = parse_document(read_input(p, "config"), "toml", f"config {p.name}")
    # an explorer's saved file (Explorer.to_toml) also holds its seed and [explorer] view, which
    # the sweep does not use (--seed sets the seed); anything else is a mistake
    unknown = sorted(set(doc) - {"grid", "description", "seed", "explorer"})
    if unknown:
        raise ConfigError(f"config {p.name}: unknown key {unknown[0]!r}; expected [[grid]] tables "
                          "(and a description; an explorer's file also has seed and [explorer])")
    if not isinstance(doc.get("description", ""), str):
        raise ConfigError(f"config {p.name}: description must be a string")
    if not isinstance(doc.get("explorer", {}), dict):
        raise ConfigError(f"config {p.name}: explorer must be a table (the explorer's saved view)")
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"config {p.name}: seed must be a whole number in [0, 2**63)")
    tables = doc.get("grid")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"config: {p} has no [[grid]] table")
    for n, t in enumerate(tables):
        if not t:
            raise ConfigError(f"config {p.name}: grid[{n}] is empty; give at least one parameter "
                              "(an empty table would run one all-default point)")
        for key, value in t.items():
            values = value if isinstance(value, list) else [value]
            if isinstance(value, list) and not value:
                raise ConfigError(f"config {p.name}: grid[{n}].{key} is an empty list; give at least one value")
            for v in values:
                if isinstance(v, list) or (isinstance(v, dict) and key != "hot"):
                    raise ConfigError(f"config {p.name}: grid[{n}].{key} has a nested "
                                      f"{type(v).__name__}; give a value or a list of values")
                if not isinstance(v, (str, int, float, bool, dict)):
                    raise ConfigError(f"config {p.name}: grid[{n}].{key} has a {type(v).__name__}; "
                                      "give numbers, strings or booleans")
    grids = [race_grid(**t) for t in tables]
    check_grid_size(sum(len(g) for g in grids), force=force)  # counted before any point is made
    return Grid.concat(grids)


def run(args):
    """Parse the grid, sweep, save, print a summary."""
    from workbench.race.experiment import RACE  # start-up: pandas and the simulator, not for parsing
    from workbench.sweep.engine import parse_assignments, save_frame, sweep, sweep_path  # start-up: pandas
    from workbench.ui.format import human_table  # start-up: pandas, not for parsing

    if args.config and args.set:
        raise ConfigError("config: give either --config FILE.toml or --set, not both")
    if args.config:
        grid = grid_from_toml(args.config, force=args.force)
    elif not args.set:
        raise ConfigError("set: give at least one NAME=V1,V2,... (parameters: " + ", ".join(RACE_PARAMETERS) + ")")
    else:
        grid = parse_assignments(args.set, RACE)
    backend, scheduler = backend_of(args)
    path = sweep_path(args.out)
    check_writable(path, what="out")  # a directory, an unwritable place: said before "exists"
    if path.exists() and not args.force:
        raise ConfigError(f"out: {path} exists; choose another --out NAME or pass --force to replace it")
    frame = sweep(grid, seed=args.seed, backend=backend, jobs=args.jobs, scheduler=scheduler,
                  cache=not args.no_cache, progress=not args.quiet, force=args.force)
    frame.attrs["provenance"]["grid"] = path.stem
    written = save_frame(frame, path)
    columns = write_columns(path.with_name(f"{path.stem}.columns.json"), frame.columns)
    pts = grid.points()  # the parameters that vary: the table's leading columns
    axes = [k for k in pts[0] if k in frame.columns and k != "hot"
            and len({json.dumps(p.get(k), sort_keys=True, default=str) for p in pts}) > 1]
    cols = axes + [f"{m}_mean" for m in _SHOWN]
    print(human_table(frame[cols]))
    s = frame.attrs["sweep"]
    print(f"{s['points']} points: {s['cached']} read from the point cache (computed before, same code), "
          f"{s['computed']} computed"
          + (f", {s['corrupt']} corrupted entries recomputed" if s["corrupt"] else ""))
    print(f"wrote {written} (units and meanings of its columns: {columns.name})")
    return 0
