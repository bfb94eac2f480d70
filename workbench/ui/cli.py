"""Command line: ``int3-workbench <command> ...`` (or ``python -m workbench <command> ...``).

Each command lives in :mod:`workbench.ui.commands` as a module with
``configure(parser)`` and ``run(args) -> int``. Bad input raises
:class:`workbench.base.errors.ConfigError`, printed here as one line with exit
status 2. ``--version`` names the package version and the source hash
every cached and written result is stamped with; output cut short by a
closed pipe (``... | head``) ends quietly. Ctrl-C prints one line and exits
with status 130; run as ``python -m workbench``, the shutdown that follows
is silent and bounded (:func:`exit_interrupted`), so no thread of a
half-started Dask cluster or process pool prints its own traceback on the
way out. The tool models no kernel file itself; the commands name the ones
they model.
"""

import argparse
import importlib
import os
import re
import signal
import sys
import textwrap
import threading
from pathlib import Path

from workbench.base.version import VERSION as __version__
from workbench.base.errors import ConfigError
from workbench.base.environment import check_environment
from workbench.base.paths import check_data_dir
from workbench.base.process import acknowledge_interrupt, interrupt_shown, start_watchdog, watch_interrupts
from workbench.base.version import code_version

__all__ = ["COMMANDS", "DESCRIPTION", "EXAMPLES", "INTERRUPTED", "exit_interrupted", "main", "prog_name"]

#: the exit status of an interrupted command (128 + SIGINT)
INTERRUPTED = 130
_INTERRUPTED_LINE = "interrupted; finished points are cached and a rerun resumes"

#: what the top-level ``--help`` says the tool is
DESCRIPTION = ("Emulate and simulate what happens to calls that hit an int3 while Linux ftrace "
               "rewrites a 5-byte call site (text_poke_bp) on an emulated i386 or x86_64 kernel "
               "(--arch), and count the tracer and livepatch invocations each int3-handler strategy drops.")

#: examples shown at the end of the top-level ``--help``
EXAMPLES = """examples:
  {prog} call --function do_IRQ --ops livepatch,tracer   one traced call, watched
  {prog} explore --strategy skip --entry v5.1            the emulator's outcome table
  {prog} model-check --arch x86_64 --strategy skip       two calling CPUs, every interleaving
  {prog} simulate --strategy skip,spin --cpus 24,256     dropped invocations per patch
  {prog} sweep --set strategy=skip,spin --set cpus=1,64 --out mine
  {prog} figures --quick                                 every figure, reduced grid (_quick files)
  {prog} report                                          one self-contained HTML report
  {prog} COMMAND --help                                  the options of one command"""

#: command name -> (module under workbench.ui.commands, one-line help)
COMMANDS = {
    "listing": ("listing", "disassemble a kernel symbol of the emulated image"),
    "call": ("call", "run one call of a traced function in a stable ftrace state"),
    "scenarios": ("scenarios", "list the named patch scenarios"),
    "explore": ("explore", "interleave a patch with calling CPUs; print the outcome table"),
    "model-check": ("model_check", "two or three calling CPUs against the patching protocol, every interleaving"),
    "simulate": ("simulate", "race simulator: dropped invocations on N CPUs"),
    "sweep": ("sweep", "run a grid of race-simulator configurations (local or Dask)"),
    "figures": ("figures", "regenerate every figure and summary table into data/"),
    "columns": ("columns", "every parameter and data column: unit and meaning"),
    "report": ("report", "run the notebooks and write one self-contained HTML report into data/report/"),
    "replay": ("replay", "re-execute a model checker's counterexample file step by step"),
    "anchor": ("anchor", "boot Debian's 6.1 kernels under QEMU; their ftrace IPIs against the v6.1 plan"),
    "check-tree": ("check_tree", "a kernel tree's own ftrace_32.S against ours: outcome tables row by row"),
    "kernel-source": ("kernel_source", "fetch Debian's linux-source tree into the data directory; print its root"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message}\n")


def prog_name(argv0=None) -> str:
    """How the user ran us: ``int3-workbench`` (the console script) or ``python -m workbench``."""
    name = Path(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")).name
    if not name or name in ("__main__.py", "-c") or name.startswith("python"):
        return "python -m workbench"
    return name


def _chosen(argv) -> str | None:
    """The command *argv* names: its first word that is not an option (the top level takes no values)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _build(argv=None):
    """The parser; only the command *argv* names imports its module and adds its options.

    ``--version``, the top-level ``--help`` and every other command's entry in
    it need no command module, so they load none of the numeric libraries.
    """
    chosen = _chosen(sys.argv[1:] if argv is None else argv)
    prog = prog_name()
    parser = _Parser(prog=prog, description=textwrap.fill(DESCRIPTION, 78), epilog=EXAMPLES.format(prog=prog),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"int3-workbench {__version__} (code {code_version()})")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND",
                                title="commands")
    for name, (mod, help_) in COMMANDS.items():
        if name != chosen:  # listed in --help, never parsed: no options, no module imported
            sub.add_parser(name, help=help_, description=help_).set_defaults(_module=mod)
            continue
        module = importlib.import_module(f"workbench.ui.commands.{mod}")
        doc = (module.__doc__ or "").split("\n\n", 1)
        # the command's module docstring after its first paragraph: details and examples
        p = sub.add_parser(name, help=help_, description=help_,
                           epilog=_plain(doc[1]) if len(doc) > 1 else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(_module=mod)
        module.configure(p)
    return parser


def _plain(doc: str) -> str:
    """A docstring as terminal text: no Sphinx roles (:data:`x` -> x), literals or ``::``."""
    doc = re.sub(r":(?:data|func|class|mod|meth|attr|obj):`~?([^`]+)`", r"\1", doc)
    return doc.replace("``", "").replace("::", ":").strip()


def main(argv=None):
    """Parse *argv* and run the command; return the exit status."""
    try:
        check_environment()  # MPLBACKEND, LOKY_MAX_CPU_COUNT, TQDM_*, ...: one line, not a library's traceback
        args = _build(argv).parse_args(argv)
        if argv is None and args._module != "report":  # the process is ours; report's kernels take SIGINT
            watch_interrupts(_INTERRUPTED_LINE)  # Ctrl-C: one line, status 130; SIGINT blocked in every
            # thread and process started from here on
            start_watchdog()  # a kill -9 of this process ends every process it starts, from its first instant
        module = importlib.import_module(f"workbench.ui.commands.{args._module}")
        check_data_dir()  # WORKBENCH_DATA a file, read-only, ...: before any work
        return module.run(args) or 0
    except ConfigError as exc:
        if interrupt_shown():
            return INTERRUPTED
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        acknowledge_interrupt()
        if not interrupt_shown():
            print(_INTERRUPTED_LINE, file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the pipe
    except BaseException:
        if interrupt_shown():  # a pool whose workers the interrupt ended raises its own error: still Ctrl-C
            acknowledge_interrupt()
            return INTERRUPTED
        raise


def exit_interrupted(status: int) -> None:
    """After an interrupt (*status* :data:`INTERRUPTED`), keep the shutdown quiet and bounded.

    The one line is already printed. Interpreter shutdown then joins a
    half-started Dask cluster's threads and runs their exit handlers, each
    printing a traceback: stderr is sent to ``/dev/null`` for it, and if it
    takes more than 10 s the process ends at once. Files written so far are
    complete (every write is atomic) and workers die with this process.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: a late Ctrl-C cannot cut the exit short
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
