"""``python -m workbench report``: run the notebooks and write one self-contained HTML report.

Regenerates the figures and summary tables (served from the caches when
nothing changed), executes every notebook with papermill on its default
parameters into data/report/notebooks/, and writes data/report/report.html
(report_quick.html with --quick): provenance, tool versions, every figure
with its caption, every summary table and the executed notebooks, images
embedded, readable and printable without a network.

Examples::

    int3-workbench report --quick          reduced grid, a few minutes
    int3-workbench report                  the published grid
    int3-workbench report --no-notebooks   figures and tables only
"""

from workbench.ui.commands.backend import add_backend_options, backend_of

__all__ = ["configure", "run"]


def configure(parser):
    """Add the report options to *parser*."""
    parser.add_argument("--quick", action="store_true", help="the reduced grid of figures --quick")
    parser.add_argument("--no-notebooks", action="store_true", help="leave the notebooks out")
    parser.add_argument("--seed", type=int, default=0, help="the one seed every sweep point's stream is spawned from")
    add_backend_options(parser)
    parser.add_argument("--timeout", type=float, default=1800, help="longest a notebook cell may run (s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args):
    """Build the report; print where it is and how long each step took."""
    from workbench.ui.report import build_report  # start-up: pandas and the figures job, not for parsing

    backend, scheduler = backend_of(args)
    result = build_report(args.quick, seed=args.seed, jobs=args.jobs, backend=backend, scheduler=scheduler,
                          run_notebooks=not args.no_notebooks, timeout=args.timeout, progress=not args.quiet)
    for nb in result.notebooks:
        print(f"wrote {nb}")
    print(f"wrote {result.html}")
    for k, v in result.seconds.items():
        print(f"  {k}: {v:.1f} s")
    return 0
