"""``model-check``: two or three calling CPUs against the patching protocol, every interleaving.

Explores ``text_poke_bp_batch()`` / ``poke_int3_handler()`` of
``arch/x86/kernel/alternative.c`` against 2 or 3 calling CPUs executing the
emulated kernel's machine code (i386, or x86_64 with its per-ops
trampolines), with source-DPOR and sleep sets (docs/MODEL_CHECKING.md). It
prints one row per (configuration, outcome, CPU call) and writes one
counterexample file per crash or deadlock, which `replay` re-executes step
by step. Each configuration is split into subtrees run as cached work
items, in local processes (the default, --jobs of them), here (--serial) or on
Dask (ui/commands/backend.py: the one rule of every command that runs work
items), so an interrupted run resumes.

Examples::

    int3-workbench model-check --strategy all --entry all --jobs 2
    int3-workbench model-check --arch x86_64 --strategy skip,emulate_regs_caller --entry v5.2
    int3-workbench model-check --handler irqoff_wait --strategy emulate_new
"""

import json
import textwrap
import time
from pathlib import Path

from workbench.base.errors import ConfigError, check_choice
from workbench.base.paths import data_subdir
from workbench.base.store import check_writable
from workbench.base.vocabulary import (ARCHES, ENTRIES_BY_ARCH, MC_HANDLERS, MC_POKE_METHODS, RANGES, SPLIT, STRATEGIES,
                                       check_param)
from workbench.ui.commands.backend import add_backend_options, backend_of
from workbench.ui.commands.tree_option import add_kernel_tree, kernel_tree

__all__ = ["DEADLOCK_NOTE", "configure", "run"]

#: said under a model-checking table whose deadlocked calls count as violations or drops
DEADLOCK_NOTE = textwrap.fill(
    "note: a deadlocked call (dead/deadlock) never leaves the int3 handler, so nothing of it runs: where "
    "the old and the new text would both run the live patch, it counts as a violation and a dropped "
    "livepatch invocation, as in the 1-CPU outcome table (a tracer being registered drops nothing: "
    "docs/KERNEL.md §1).", 100)


def configure(p):
    """Add the model checker's options to *p*."""
    r = RANGES["mc_cpus"]
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)}; a scenario "
                   "the arch cannot have is refused (livepatch: x86_64, or the mail's i386 sketch)")
    p.add_argument("--scenario", default="seed", help="a name from `scenarios`, or a TOML file")
    p.add_argument("--cpus", type=int, default=2, help=f"calling CPUs, {r.lo:g}-{r.hi:g} (default 2)")
    p.add_argument("--strategy", default="all", help=f"all, or comma-separated from {', '.join(STRATEGIES)}")
    p.add_argument("--entry", default=None,
                   help="int3 entry, or all: " + "; ".join(f"{a}: {', '.join(e)}" for a, e in ENTRIES_BY_ARCH.items())
                   + " (default: the arch's latest)")
    p.add_argument("--poke-method", default=None,
                   help=f"force a poke method ({', '.join(MC_POKE_METHODS)}); default: the strategy's own "
                        "(docs/MODEL_CHECKING.md gives each one's kernel history)")
    p.add_argument("--functions", default=None,
                   help="comma-separated traced functions, one per calling CPU in turn (default: a livepatched "
                        "and a patched ordinary function, alternating)")
    p.add_argument("--handler", default="strategy",
                   help=f"one of {', '.join(MC_HANDLERS)}: the strategy as shipped, or the negative control that "
                        "waits with interrupts off")
    p.add_argument("--coherent-fetch", action="store_true", help="a text store is seen at the next fetch")
    p.add_argument("--cex-dir", default=None,
                   help="where counterexample schedule files go (default: counterexamples/ in the data directory)")
    add_backend_options(p, "the work items")
    p.add_argument("--split", type=int, default=SPLIT,
                   help=f"independent subtrees (work items) per configuration, 1-4096 (default {SPLIT}); the "
                        "results do not depend on it beyond which schedule is reported")
    p.add_argument("--json", action="store_true", help="print JSON records (every column) and the files")
    p.add_argument("--wide", action="store_true",
                   help="print every column, one row per line (default: a table grouped by configuration)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_kernel_tree(p)


def _check_args(args) -> tuple[str, int, list[str], list[str], str]:
    """Every option checked before any work: ``(arch, cpus, strategies, entries, backend)``."""
    arch = check_choice("arch", args.arch, ARCHES)
    k = check_param("mc_cpus", args.cpus, label="cpus")
    names = list(STRATEGIES) if args.strategy == "all" else args.strategy.split(",")
    for s in names:
        check_choice("strategy", s, STRATEGIES)
    entries = ENTRIES_BY_ARCH[arch]
    chosen = list(entries) if args.entry == "all" else [entries[-1] if args.entry is None else args.entry]
    for e in chosen:
        check_choice("entry", e, entries)
    if args.poke_method is not None:
        check_choice("poke_method", args.poke_method, MC_POKE_METHODS)
    check_choice("handler", args.handler, MC_HANDLERS)
    check_param("split", args.split)
    if args.jobs is not None:
        check_param("jobs", args.jobs)
    backend, _ = backend_of(args)
    if args.json and args.wide:
        raise ConfigError("wide: --json and --wide conflict (--json prints every column); choose one")
    return arch, k, names, chosen, backend


def run(args):
    """Model-check every (strategy, entry) configuration; print the table and the counterexample files."""
    arch, k, names, entries, backend = _check_args(args)
    from workbench.emulate.mc.experiment import check_all, write_counterexamples  # start-up: pandas, Unicorn
    from workbench.emulate.scenario import load_scenario  # start-up: the scenario's checks load the kernel floor
    from workbench.kernel.image import build_image  # start-up: capstone, pyelftools, not for parsing
    from workbench.ui.format import grouped_table  # start-up: pandas, not for parsing

    t0 = time.perf_counter()
    load_scenario(args.scenario).check_arch(arch)
    tree = kernel_tree(args)
    calls = None
    if args.functions is not None:
        image = build_image(8, arch, tree)
        fns = [image.function(f).name for f in args.functions.split(",")]  # ConfigError naming the choices
        calls = [[fns[i % len(fns)]] for i in range(k)]
    points = [dict(arch=arch, scenario=args.scenario, strategy=s, entry=e, poke_method=args.poke_method, calls=calls,
                   handler=args.handler, coherent_fetch=args.coherent_fetch, cpus=k,
                   kernel_tree_path=None if tree is None else str(tree.root))
              for s in names for e in entries]
    cex_dir = Path(args.cex_dir) if args.cex_dir is not None else data_subdir("counterexamples")
    check_writable(cex_dir / "cex_000.json", what="cex-dir")  # before the model check, not after it
    frame = check_all(points, backend=backend, jobs=args.jobs, scheduler=args.scheduler,
                      progress=not args.quiet, split=args.split)
    files = write_counterexamples(frame, cex_dir) if len(frame) else []
    cols = ["arch", "strategy", "entry", "poke_method", "outcome", "traces", "cpu", "function", "trapped", "body",
            "tracer_runs", "livepatch_ran", "violation", "dropped_tracer", "dropped_livepatch", "spurious",
            "mixed", "crash", "crash_reason", "deadlock", "kernel_tree"]
    table = frame[cols]
    if args.json:
        print(json.dumps({"outcomes": json.loads(table.to_json(orient="records")), "counterexamples": files},
                         indent=1))
        return 0
    import pandas as pd  # start-up: loaded by check_all already; named here for the display options

    if args.wide:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_rows", 500):
            print(table.to_string(index=False))
    else:
        print(grouped_table(table, group=("arch", "strategy", "entry", "poke_method")))
    if (table["deadlock"] & (table["violation"].astype(bool) | table["dropped_livepatch"].astype(bool))).any():
        print(f"\n{DEADLOCK_NOTE}")
    per = frame.drop_duplicates(["strategy", "entry"])
    summary = (f"model check, {arch}, {k} calling CPUs: " + "; ".join(
        f"{r.strategy} {r.entry}: {r.mc_executions} executions, {r.mc_states} states, {r.mc_blocked} pruned, "
        f"{r.mc_subtrees} subtrees"
        for r in per.itertuples()) + f"; {time.perf_counter() - t0:.1f} s")
    print("\n" + (summary if args.wide else textwrap.fill(summary, 100, subsequent_indent="  ")))
    for f in files:
        print(f"counterexample: {f}")
    return 0
