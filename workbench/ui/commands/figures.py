"""``python -m workbench figures``: regenerate every figure and summary table into data/.

``--quick`` runs a reduced grid (what ``make figures QUICK=1`` does). Sweeps
run in local processes by default; ``--dask local`` uses a Dask
LocalCluster and ``--scheduler tcp://HOST:PORT`` a running Dask cluster.
Progress bars go to stderr; the list of outputs and the timings to stdout.
A complete local run (no ``--only``) whose code, seed, grid and libraries
are those of the last complete run, and whose files are still byte for byte
the ones written then, is answered from that run's record
(:mod:`workbench.figures.job_record`) without loading the job.
"""

import time

from workbench.base.errors import check_range
from workbench.base.paths import data_dir
from workbench.base.store import check_writable
from workbench.figures.job_record import job_key, read_record, record_path, write_record
from workbench.ui.commands.backend import add_backend_options, backend_of

__all__ = ["configure", "run"]


def configure(parser):
    """Add the figures options to *parser*."""
    parser.add_argument("--quick", action="store_true", help="a reduced grid with fewer trials (under a minute)")
    add_backend_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="the one seed every point's stream is spawned from")
    parser.add_argument("--only", default=None, help="comma-separated figure names to draw (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args):
    """Regenerate; print what was written and how long it took."""
    t0 = time.perf_counter()
    backend, scheduler = backend_of(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only is not None else None
    key = None
    if only is None and backend != "dask":  # a complete local job: answered from its record when nothing
        # it depends on changed (the same checks of its input as regenerate's, first)
        if args.jobs is not None:
            check_range("jobs", args.jobs, 1, 4096, integer=True)
        check_range("seed", args.seed, 0, 2**63 - 1, integer=True)
        for sub in ("sweeps", "summary", "figures"):
            check_writable(data_dir() / sub / "check", what="outdir")
        key = job_key(args.quick, args.seed, data_dir())
        done = read_record(args.quick, key)
        if done is not None:
            files, problems = done
            for p in files:
                print(f"wrote {p}")
            print(f"figures job: code, seed, grid and libraries unchanged since the complete run recorded in "
                  f"{record_path(args.quick)}; its {len(files)} files read back, each SHA-256 as written "
                  f"then; nothing recomputed")
            print(f"  total: {time.perf_counter() - t0:.1f} s")
            print(f"wrote {len(files)} files")
            for problem in problems:
                print(f"warning: {problem}")
            return 0
    from workbench.figures.job import regenerate  # start-up: pandas, not for parsing (nor for sweep's)

    report = regenerate(args.quick, backend=backend, jobs=args.jobs, scheduler=scheduler, seed=args.seed,
                        progress=not args.quiet, only=only)
    for p in report.files:
        print(f"wrote {p}")
    print(report.summary())
    for problem in report.problems:
        print(f"warning: {problem}")
    if key is not None:  # the figures' input manifests decide what the next full job redraws: kept too
        manifests = sorted(p for p in data_dir().glob("figures/*.inputs.json")
                           if p.name.endswith("_quick.inputs.json") == bool(args.quick))
        write_record(args.quick, key, report.files, manifests, report.problems)
    return 0
