"""Command line: ``python -m workbench <command> ...``.

Each command lives in :mod:`workbench.ui.commands` as a module with
``configure(parser)`` and ``run(args) -> int``. Bad input raises
:class:`workbench.base.errors.ConfigError`, printed here as one line with exit
status 2.
"""

import argparse
import importlib
import sys

from workbench.base.errors import ConfigError

__all__ = ["main", "COMMANDS"]

#: command name -> (module under workbench.ui.commands, one-line help)
COMMANDS = {
    "listing": ("listing", "disassemble a kernel symbol of the emulated image"),
    "call": ("call", "run one call of a traced function in a stable ftrace state"),
    "scenarios": ("scenarios", "list the named patch scenarios"),
    "explore": ("explore", "interleave a patch with calling CPUs; print the outcome table"),
    "simulate": ("simulate", "race simulator: dropped invocations on N CPUs"),
    "sweep": ("sweep", "run a grid of race-simulator configurations (local or Dask)"),
    "figures": ("figures", "regenerate every figure and summary table into data/"),
    "replay": ("replay", "re-execute a model checker's counterexample file step by step"),
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
    args = _build().parse_args(argv)
    module = importlib.import_module(f"workbench.ui.commands.{args._module}")
    try:
        return module.run(args) or 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished points are cached and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
