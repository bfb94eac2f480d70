"""``explore``: interleave a scenario's patch with calling CPUs; print the outcome table."""

import json
import sys
import textwrap
import time

from workbench.base.errors import ConfigError, check_choice
from workbench.base.vocabulary import ARCHES, BREAKPOINT_BATCHINGS, ENTRIES_BY_ARCH, MODES, POKE_METHODS, STRATEGIES
from workbench.ui.commands.tree_option import add_kernel_tree, kernel_tree


def configure(p):
    p.add_argument("--scenario", default="seed", help="a name from `scenarios`, or a TOML file")
    p.add_argument("--strategy", default="all", help=f"all, or one of {', '.join(STRATEGIES)}")
    p.add_argument("--mode", default="exhaustive", help=f"one of {', '.join(MODES)}")
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)}; a scenario "
                   "the arch cannot have is refused (livepatch: x86_64, or the mail's i386 sketch)")
    p.add_argument("--entry", default=None,
                   help="int3 entry: " + "; ".join(f"{a}: {', '.join(e)}" for a, e in ENTRIES_BY_ARCH.items())
                   + " (default: the arch's latest)")
    p.add_argument("--poke-method", default=None,
                   help=f"force how the patcher writes text ({', '.join(POKE_METHODS)}); default: the strategy's own")
    p.add_argument("--batching", default="batched",
                   help=f"{' or '.join(BREAKPOINT_BATCHINGS)}: ftrace's one breakpoint batch (default), or a "
                        "breakpoint round per site")
    p.add_argument("--functions", default=None, help="comma-separated traced functions to call")
    p.add_argument("--cpus", type=int, default=None,
                   help="random mode: calling CPUs (1-16, default 4); exhaustive mode: 1 (two or three calling "
                        "CPUs are model-checked by the model-check command, docs/MODEL_CHECKING.md)")
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


#: options only random mode uses, and their defaults
_RANDOM_ONLY = {"schedules": 20, "seed": 0}


def check_flags(args) -> None:
    """Refuse, in one line, an option that cannot apply to the mode chosen: the random mode's options in
    exhaustive mode, and two or more calling CPUs in exhaustive mode (that is the model checker's command)."""
    check_choice("mode", args.mode, MODES)
    check_choice("batching", args.batching, BREAKPOINT_BATCHINGS)
    if args.mode == "random":
        return
    if args.cpus not in (None, 1):
        how = f"`model-check --cpus {args.cpus}`" if args.cpus in (2, 3) else "`model-check --cpus 2` (or 3)"
        raise ConfigError(f"cpus: --mode exhaustive explores one calling CPU, not {args.cpus}; two or three calling "
                          f"CPUs are model-checked by {how} (docs/MODEL_CHECKING.md)")
    for name, default in _RANDOM_ONLY.items():
        if getattr(args, name) != default:
            raise ConfigError(f"{name}: --{name} applies only to --mode random")


def run(args):
    from workbench.ui.format import grouped_table  # start-up: pandas, not for parsing

    arch = check_choice("arch", args.arch, ARCHES)
    check_flags(args)
    from workbench.emulate.explore import explore, outcome_table, transition_table  # start-up: Unicorn, pandas

    t0 = time.perf_counter()
    tree = kernel_tree(args)
    strategies = args.strategy if args.strategy == "all" else args.strategy.split(",")
    fns = args.functions.split(",") if args.functions is not None else None
    calls, stats = explore(args.scenario, strategies=strategies, entry=args.entry, mode=args.mode,
                           functions=fns, poke_method=args.poke_method, batching=args.batching,
                           cpus=args.cpus, schedules=args.schedules, seed=args.seed,
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
    import pandas as pd  # start-up: pandas, not for parsing

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
