"""``python -m workbench figures``: regenerate every figure and summary table into data/.

``--quick`` runs a reduced grid (what ``make figures QUICK=1`` does). Sweeps
run in local processes by default; ``--dask local`` uses a Dask
LocalCluster and ``--scheduler tcp://HOST:PORT`` a running Dask cluster.
Progress bars go to stderr; the list of outputs and the timings to stdout.
"""

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
    from workbench.figures.job import regenerate  # start-up: pandas, not for parsing (nor for sweep's)

    backend, scheduler = backend_of(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only is not None else None
    report = regenerate(args.quick, backend=backend, jobs=args.jobs, scheduler=scheduler, seed=args.seed,
                        progress=not args.quiet, only=only)
    for p in report.files:
        print(f"wrote {p}")
    print(report.summary())
    for problem in report.problems:
        print(f"warning: {problem}")
    return 0
