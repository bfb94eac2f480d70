"""Command line: ``python -m workbench <command> ...``.

Each command lives in :mod:`workbench.ui.commands` as a module with
``configure(parser)`` and ``run(args) -> int``. Bad input raises
:class:`workbench.base.errors.ConfigError`, printed here as one line with exit
status 2. Ctrl-C prints one line and exits with status 130; run as
``python -m workbench``, the shutdown that follows is silent and bounded
(:func:`exit_interrupted`), so no thread of a half-started Dask cluster or
process pool prints its own traceback on the way out.
"""

import argparse
import importlib
import os
import sys
import threading

from workbench.base.errors import ConfigError
from workbench.base.paths import check_data_dir

__all__ = ["COMMANDS", "exit_interrupted", "main"]

#: the exit status of an interrupted command (128 + SIGINT)
INTERRUPTED = 130

#: command name -> (module under workbench.ui.commands, one-line help)
COMMANDS = {
    "listing": ("listing", "disassemble a kernel symbol of the emulated image"),
    "call": ("call", "run one call of a traced function in a stable ftrace state"),
    "scenarios": ("scenarios", "list the named patch scenarios"),
    "explore": ("explore", "interleave a patch with calling CPUs; print the outcome table"),
    "simulate": ("simulate", "race simulator: dropped invocations on N CPUs"),
    "sweep": ("sweep", "run a grid of race-simulator configurations (local or Dask)"),
    "figures": ("figures", "regenerate every figure and summary table into data/"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message}\n")


def _build():
    parser = _Parser(prog="python -m workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (mod, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=mod)
        importlib.import_module(f"workbench.ui.commands.{mod}").configure(p)
    return parser


def main(argv=None):
    """Parse *argv* and run the command; return the exit status."""
    try:
        args = _build().parse_args(argv)
        module = importlib.import_module(f"workbench.ui.commands.{args._module}")
        check_data_dir()  # WORKBENCH_DATA a file, read-only, ...: before any work
        return module.run(args) or 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished points are cached and a rerun resumes", file=sys.stderr)
        return INTERRUPTED


def exit_interrupted(status: int) -> None:
    """After an interrupt (*status* :data:`INTERRUPTED`), keep the shutdown quiet and bounded.

    The one line is already printed. Interpreter shutdown then joins a
    half-started Dask cluster's threads and runs their exit handlers, each
    printing a traceback: stderr is sent to ``/dev/null`` for it, and if it
    takes more than 10 s the process ends at once. Files written so far are
    complete (every write is atomic) and workers die with this process.
    """
    if status != INTERRUPTED:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
    except (OSError, ValueError):
        pass
    timer = threading.Timer(10.0, os._exit, (INTERRUPTED,))
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    _status = main()
    exit_interrupted(_status)
    sys.exit(_status)
