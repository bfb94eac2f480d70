"""``explore``: interleave a scenario's patch with calling CPUs; print the outcome table."""

import json
import sys
import textwrap
import time
from pathlib import Path

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import data_subdir
from workbench.base.store import check_writable
from workbench.base.vocabulary import ARCHES, ENTRIES, ENTRIES_BY_ARCH, MODES, SPLIT, STRATEGIES
from workbench.kernel.text_poke import PROTOCOLS
from workbench.ui.commands.tree_option import add_kernel_tree, kernel_tree

#: said under a model-checking table whose deadlocked calls count as violations or drops
DEADLOCK_NOTE = textwrap.fill(
    "note: a deadlocked call (dead/deadlock) never leaves the int3 handler, so nothing of it runs: where "
    "the old and the new text would both run the live patch, it counts as a violation and a dropped "
    "livepatch invocation, as in the 1-CPU outcome table (a tracer being registered drops nothing: "
    "docs/KERNEL.md §1).", 100)


def configure(p):
    p.add_argument("--scenario", default="seed", help="a name from `scenarios`, or a TOML file")
    p.add_argument("--strategy", default="all", help=f"all, or one of {', '.join(STRATEGIES)}")
    p.add_argument("--mode", default="exhaustive", help=f"one of {', '.join(MODES)}")
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)}; a scenario "
                   "the arch cannot have is refused (livepatch: x86_64, or the mail's i386 sketch)")
    p.add_argument("--entry", default=None,
                   help="int3 entry: " + "; ".join(f"{a}: {', '.join(e)}" for a, e in ENTRIES_BY_ARCH.items())
                   + " (default: the arch's latest; all, with --cpus)")
    p.add_argument("--protocol", default=None,
                   help=f"force a protocol ({', '.join(PROTOCOLS)}); default: the strategy's own")
    p.add_argument("--per-site", action="store_true",
                   help="one breakpoint protocol per site instead of ftrace's batch")
    p.add_argument("--functions", default=None, help="comma-separated traced functions to call")
    p.add_argument("--cpus", type=int, default=None,
                   help="random mode: calling CPUs (1-16, default 4); exhaustive mode: 2-3 calling CPUs "
                        "model-checked with source-DPOR (docs/MODEL_CHECKING.md)")
    p.add_argument("--handler", default="strategy",
                   help="exhaustive --cpus: strategy, or the negative control irqoff_wait")
    p.add_argument("--coherent-fetch", action="store_true",
                   help="exhaustive --cpus: a text store is seen at the next fetch")
    p.add_argument("--cex-dir", default=None,
                   help="exhaustive --cpus: where counterexample schedule files go "
                        "(default: counterexamples/ in the data directory)")
    p.add_argument("--dask", default=None, choices=("local",),
                   help="exhaustive --cpus: run configurations on a Dask LocalCluster")
    p.add_argument("--scheduler", default=None, help="exhaustive --cpus: a Dask scheduler address")
    p.add_argument("--jobs", type=int, default=None, help="exhaustive --cpus: local worker processes")
    p.add_argument("--split", type=int, default=SPLIT,
                   help=f"exhaustive --cpus: independent subtrees (work items) per configuration, 1-4096 "
                        f"(default {SPLIT}); the results do not depend on it beyond which schedule is reported")
    p.add_argument("--schedules", type=int, default=20, help="random mode: schedules per strategy")
    p.add_argument("--seed", type=int, default=0, help="random mode: seed")
    p.add_argument("--table", default="outcomes", choices=("outcomes", "transition", "calls"),
                   help="outcomes: per trapped call; transition: every call; calls: raw rows")
    p.add_argument("--json", action="store_true", help="print JSON records (every column)")
    p.add_argument("--wide", action="store_true",
                   help="print every column, one row per line (default: a table grouped by strategy that "
                        "fits 100 columns)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_kernel_tree(p)


#: options that only the model checker (exhaustive, --cpus 2 or more) uses, and their defaults
_MC_ONLY = {"handler": "strategy", "coherent_fetch": False, "cex_dir": None, "dask": None, "scheduler": None,
            "jobs": None, "split": SPLIT}
#: options the model checker does not use, and their defaults
_NOT_MC = {"per_site": False, "schedules": 20, "seed": 0, "table": "outcomes"}
#: options only random mode uses
_RANDOM_ONLY = {"schedules": 20, "seed": 0}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_flags(args) -> bool:
    """Refuse, in one line, an option that cannot apply to the mode chosen or that conflicts; True if the
    command is a model check (exhaustive mode with two or more calling CPUs)."""
    check_choice("mode", args.mode, MODES)
    check_range("split", args.split, 1, 4096, integer=True)
    if args.jobs is not None:
        check_range("jobs", args.jobs, 1, 4096, integer=True)
    mc = args.mode == "exhaustive" and args.cpus not in (None, 1)
    if mc:
        for name, default in _NOT_MC.items():
            if getattr(args, name) != default:
                raise ConfigError(f"{name}: {_flag(name)} does not apply to the model checker (exhaustive "
                                  f"--cpus {args.cpus}); it applies to --cpus 1 or --mode random")
        if args.dask and args.scheduler:
            raise ConfigError("backend: choose one of --dask local and --scheduler, not both")
        if args.jobs is not None and args.scheduler:
            raise ConfigError("jobs: --jobs does not apply with --scheduler (the cluster has its own workers)")
    else:
        where = "--mode random" if args.mode == "random" else "exhaustive --cpus 1"
        for name, default in _MC_ONLY.items():
            if getattr(args, name) != default:
                raise ConfigError(f"{name}: {_flag(name)} applies only to the model checker (--mode exhaustive "
                                  f"--cpus 2 or 3), not to {where}")
        if args.mode != "random":
            for name, default in _RANDOM_ONLY.items():
                if getattr(args, name) != default:
                    raise ConfigError(f"{name}: {_flag(name)} applies only to --mode random")
        if args.entry == "all":
            raise ConfigError("entry: all applies only to the model checker (--cpus 2 or 3); choose one of "
                              + ", ".join(ENTRIES))
    return mc


def _model_check(args):
    """``--mode exhaustive --cpus K`` (K >= 2): every configuration explored with source-DPOR."""
    from workbench.ui.format import grouped_table  # start-up: pandas, not for parsing
    from workbench.emulate.mc.system import MAX_CALLING_CPUS, MC_PROTOCOLS  # start-up: Unicorn, not for parsing
    from workbench.sweep.mc import check_all, write_counterexamples  # start-up: pandas, Unicorn, not for parsing

    t0 = time.perf_counter()
    k = int(check_range("cpus", args.cpus, 1, MAX_CALLING_CPUS, integer=True))
    check_range("split", args.split, 1, 4096, integer=True)
    if args.protocol is not None and args.protocol not in MC_PROTOCOLS:
        raise ConfigError(f"protocol: {args.protocol!r} with --cpus; valid choices: {', '.join(MC_PROTOCOLS)}")
    tree = kernel_tree(args)
    names = list(STRATEGIES) if args.strategy == "all" else args.strategy.split(",")
    entries = list(ENTRIES) if args.entry == "all" else [args.entry]
    calls = None
    if args.functions:
        fns = args.functions.split(",")
        calls = [[fns[i % len(fns)]] for i in range(k)]
    points = [dict(scenario=args.scenario, strategy=s, entry=e, protocol=args.protocol, calls=calls,
                   handler=args.handler, coherent_fetch=args.coherent_fetch, cpus=k,
                   kernel_tree_path=None if tree is None else str(tree.root))
              for s in names for e in entries]
    backend = "dask" if (args.dask or args.scheduler) else ("local" if args.jobs else "serial")
    cex_dir = Path(args.cex_dir) if args.cex_dir is not None else data_subdir("counterexamples")
    check_writable(cex_dir / "cex_000.json", what="cex-dir")  # before the model check, not after it
    frame = check_all(points, backend=backend, jobs=args.jobs, scheduler=args.scheduler,
                      progress=not args.quiet, split=args.split)
    files = write_counterexamples(frame, cex_dir) if len(frame) else []
    cols = ["strategy", "entry", "protocol", "outcome", "traces", "cpu", "function", "trapped", "body",
            "tracer_runs", "livepatch_ran", "violation", "dropped_tracer", "dropped_livepatch", "spurious",
            "mixed", "crash", "crash_reason", "deadlock", "kernel_tree"]
    table = frame[cols]
    if args.json:
        print(json.dumps({"outcomes": json.loads(table.to_json(orient="records")), "counterexamples": files},
                         indent=1))
        return 0
    import pandas as pd

    if args.wide:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_rows", 500):
            print(table.to_string(index=False))
    else:
        print(grouped_table(table, group=("strategy", "entry", "protocol")))
    if (table["deadlock"] & (table["violation"].astype(bool) | table["dropped_livepatch"].astype(bool))).any():
        print(f"\n{DEADLOCK_NOTE}")
    per = frame.drop_duplicates(["strategy", "entry"])
    summary = ("exhaustive, %d calling CPUs: " % k + "; ".join(
        f"{r.strategy} {r.entry}: {r.mc_executions} executions, {r.mc_states} states, {r.mc_blocked} pruned, "
        f"{r.mc_subtrees} subtrees"
        for r in per.itertuples()) + f"; {time.perf_counter() - t0:.1f} s")
    print("\n" + (summary if args.wide else textwrap.fill(summary, 100, subsequent_indent="  ")))
    for f in files:
        print(f"counterexample: {f}")
    return 0


def run(args):
    from workbench.ui.format import grouped_table  # start-up: pandas, not for parsing

    arch = check_choice("arch", args.arch, ARCHES)
    if check_flags(args):
        if arch != "i386":
            raise ConfigError(f"arch: the model checker (--cpus {args.cpus}) runs i386 only; "
                              "use --arch i386, or --cpus 1 / --mode random on x86_64")
        if args.entry is None:
            args.entry = ENTRIES[-1]
        return _model_check(args)
    from workbench.emulate.explore import explore, outcome_table, transition_table  # start-up: Unicorn, pandas

    t0 = time.perf_counter()
    tree = kernel_tree(args)
    strategies = args.strategy if args.strategy == "all" else args.strategy.split(",")
    fns = args.functions.split(",") if args.functions is not None else None
    calls, stats = explore(args.scenario, strategies, args.entry, args.mode, fns, args.protocol,
                           args.cpus, args.schedules, args.seed, per_site=args.per_site,
                           progress=not args.quiet, arch=arch, tree=tree)
    dt = time.perf_counter() - t0
    table = {"outcomes": outcome_table, "transition": transition_table, "calls": lambda c: c}[args.table](calls)
    if args.table != "calls":
        table = table.assign(schedules_raw=table["strategy"].map(lambda s: stats[s]["raw"]),
                             schedules_distinct=table["strategy"].map(lambda s: stats[s]["distinct"]),
                             stop_machine_rounds=table["strategy"].map(lambda s: stats[s]["stalls"]))
    table = table.assign(kernel_tree=calls.attrs["kernel_tree"])  # whose trampolines ran
    mismatches = sorted({m for s in stats.values() for m in s.get("reference_mismatches", ())})
    if args.json:
        print(json.dumps(json.loads(table.to_json(orient="records")), indent=1))
        return 0
    import pandas as pd

    for m in mismatches:
        print(f"warning: the tree's trampolines: {m}", file=sys.stderr)
    if args.wide or args.table == "calls":
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_rows", 200):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    else:  # the schedule counts are per strategy: in its heading, not on every row
        heads = {s: f"{v['raw']} schedules ({v['distinct']} distinct)"
                 + (f", {v['stalls']} stop_machine rounds" if v["stalls"] else "") for s, v in stats.items()}
        print(grouped_table(table, headings=heads,
                            drop=("schedules_raw", "schedules_distinct", "stop_machine_rounds")).lstrip("\n"))
    if args.wide:
        print(f"\n{args.mode}: " + "; ".join(f"{s} {v['raw']} schedules ({v['distinct']} distinct)"
                                            for s, v in stats.items()) + f"; {dt:.1f} s")
    else:
        quiet = [s for s in stats if s not in set(table.get("strategy", []))]
        print("\n" + textwrap.fill(
            f"{args.mode}: {sum(v['raw'] for v in stats.values())} schedules "
            f"({sum(v['distinct'] for v in stats.values())} distinct) over {len(stats)} strategies"
            + (f"; no trapped call under {', '.join(quiet)}" if quiet else "") + f"; {dt:.1f} s", 100))
    return 0
