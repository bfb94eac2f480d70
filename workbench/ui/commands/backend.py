"""``--serial``, ``--jobs N``, ``--dask local``, ``--scheduler URL``: the options every command that runs
a sweep shares, and the one rule that turns them into a backend.

The rule: local worker processes (``--jobs`` of them, default every CPU) unless ``--serial`` (this
process) or ``--dask local`` / ``--scheduler tcp://HOST:PORT`` (a Dask LocalCluster, a running
cluster) says otherwise; two of those at once, or ``--jobs`` with one that has no local pool, is a
ConfigError naming them (:mod:`workbench.sweep.engine` runs the backends).
"""

from __future__ import annotations

import argparse

from workbench.base.errors import ConfigError

__all__ = ["add_backend_options", "backend_of"]


def add_backend_options(parser: argparse.ArgumentParser, what: str = "the sweeps") -> None:
    """Add ``--jobs``, ``--dask``, ``--scheduler`` and ``--serial`` to *parser*; *what* is what they run."""
    parser.add_argument("--jobs", type=int, default=None, help="local worker processes (default: every CPU)")
    parser.add_argument("--dask", choices=("local",), default=None, help=f"run {what} on a Dask LocalCluster")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help=f"run {what} on the Dask cluster at this scheduler")
    parser.add_argument("--serial", action="store_true", help=f"run {what} in this process")


def backend_of(args: argparse.Namespace) -> tuple[str, str | None]:
    """``(backend, scheduler)`` from ``--serial``/``--dask``/``--scheduler``; ConfigError on a conflict."""
    chosen = [n for n, on in (("--serial", args.serial), ("--dask", args.dask), ("--scheduler", args.scheduler))
              if on]
    if len(chosen) > 1:
        raise ConfigError(f"backend: choose one of --serial, --dask local, --scheduler; got {' and '.join(chosen)}")
    if args.jobs is not None and (args.serial or args.scheduler):
        raise ConfigError(f"jobs: --jobs does not apply with {chosen[0]} (it sizes the local pool or "
                          "the Dask LocalCluster)")
    if args.serial:
        return "serial", None
    if args.dask or args.scheduler:
        return "dask", args.scheduler
    return "local", None
