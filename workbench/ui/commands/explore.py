"""``explore``: interleave a scenario's patch with calling CPUs; print the outcome table."""

import json
import time

from workbench.emulate.explore import MODES, explore, outcome_table, transition_table
from workbench.kernel.int3 import STRATEGIES
from workbench.kernel.machine import ENTRIES
from workbench.kernel.text_poke import PROTOCOLS


def configure(p):
    p.add_argument("--scenario", default="seed", help="a name from `scenarios`, or a TOML file")
    p.add_argument("--strategy", default="all", help=f"all, or one of {', '.join(STRATEGIES)}")
    p.add_argument("--mode", default="exhaustive", help=f"one of {', '.join(MODES)}")
    p.add_argument("--entry", default="v5.3", help=f"int3 entry, one of {', '.join(ENTRIES)}")
    p.add_argument("--protocol", default=None,
                   help=f"force a protocol ({', '.join(PROTOCOLS)}); default: the strategy's own")
    p.add_argument("--per-site", action="store_true",
                   help="one breakpoint protocol per site instead of ftrace's batch")
    p.add_argument("--functions", default=None, help="comma-separated traced functions to call")
    p.add_argument("--cpus", type=int, default=None, help="random mode: calling CPUs (1-16, default 4)")
    p.add_argument("--schedules", type=int, default=20, help="random mode: schedules per strategy")
    p.add_argument("--seed", type=int, default=0, help="random mode: seed")
    p.add_argument("--table", default="outcomes", choices=("outcomes", "transition", "calls"),
                   help="outcomes: per trapped call; transition: every call; calls: raw rows")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    t0 = time.perf_counter()
    strategies = args.strategy if args.strategy == "all" else args.strategy.split(",")
    fns = args.functions.split(",") if args.functions is not None else None
    calls, stats = explore(args.scenario, strategies, args.entry, args.mode, fns, args.protocol,
                           args.cpus, args.schedules, args.seed, per_site=args.per_site,
                           progress=not args.quiet)
    dt = time.perf_counter() - t0
    table = {"outcomes": outcome_table, "transition": transition_table, "calls": lambda c: c}[args.table](calls)
    if args.table != "calls":
        table = table.assign(schedules_raw=table["strategy"].map(lambda s: stats[s]["raw"]),
                             schedules_distinct=table["strategy"].map(lambda s: stats[s]["distinct"]),
                             stop_machine_rounds=table["strategy"].map(lambda s: stats[s]["stalls"]))
    if args.json:
        print(json.dumps(json.loads(table.to_json(orient="records")), indent=1))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.max_rows", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\n{args.mode}: " + "; ".join(f"{s} {v['raw']} schedules ({v['distinct']} distinct)"
                                        for s, v in stats.items()) + f"; {dt:.1f} s")
    return 0
