"""``python -m workbench simulate``: the race simulator on the command line.

Prints, per configuration (every strategy x CPU count given), the Monte Carlo
mean, standard error and 95% interval of trapped calls, violations, dropped
tracer and livepatch invocations, spurious calls, crashes, stall, window,
patch duration and IPI rounds next to the closed form. ``--json`` prints the
records; ``--bristot`` prints the model beside Bristot's measurement. The
per-call outcomes come from the emulator (``workbench.emulate.explore``).
"""

import argparse
import functools
import json
import math
import sys

from workbench.base.errors import ConfigError, check_range
from workbench.race.simulator import (METRICS, PROTOCOLS, SCENARIOS, STRATEGIES, RaceConfig, Workload,
                    PerCallOutcomes, bristot_comparison, load_outcomes, simulate_many)
from workbench.race.timing import Timing
from workbench.ui.format import human_value

__all__ = ["configure", "run"]


def _csv(kind):
    def parse(text):
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}")
    return parse


def _rate(text):
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=CALLS_PER_SECOND, got {text!r}")


def configure(parser):
    """Add the simulate options to *parser*."""
    d, t = Workload(), Timing()
    add = parser.add_argument
    add("--scenario", default="seed", help=f"patch scenario: {', '.join(SCENARIOS)} (default seed)")
    add("--strategy", type=_csv(str), default=["skip"],
        help=f"int3 strategy, or several comma-separated: {', '.join(STRATEGIES)}")
    add("--protocol", default=None, help=f"{', '.join(PROTOCOLS)} (default batched; stop_machine for "
                                         "that strategy)")
    add("--cpus", type=_csv(int), default=[64], help="CPU count(s), 1..65536, comma-separated")
    add("--trials", type=int, default=10_000, help="Monte Carlo trials (default 10000)")
    add("--seed", type=int, default=0, help="random seed; same seed, same numbers")
    add("--entry", default="v5.3", help="kernel entry of the emulated outcome table (default v5.3)")
    add("--json", action="store_true", help="print the summary records as JSON")
    add("--bristot", action="store_true", help="print the model beside Bristot's 24-CPU measurement")
    g = parser.add_argument_group("workload (per-CPU calls per second; illustrative defaults)")
    g.add_argument("--rate", type=_rate, action="append", default=None, metavar="NAME=R",
                   help="rate of a named hot function (repeatable; replaces the default list: "
                        + ", ".join(f"{n}={r:g}" for n, r in d.hot) + ")")
    g.add_argument("--sites", type=int, default=d.tail_functions,
                   help=f"ordinary tail functions besides the named ones (default {d.tail_functions})")
    g.add_argument("--tail-rate", type=float, default=d.tail_rate, help=f"total tail rate (default {d.tail_rate:g})")
    g.add_argument("--zipf", type=float, default=d.zipf_s, help=f"Zipf exponent of the tail (default {d.zipf_s:g})")
    g.add_argument("--dispersion", type=float, default=d.dispersion,
                   help="gamma-Poisson over-dispersion, 0 = Poisson (default 0)")
    g = parser.add_argument_group("timing (ns; defaults derived from DOMAIN.md section 6)")
    g.add_argument("--write-ns", type=float, default=t.write_ns, help=f"one text_poke write (default {t.write_ns:.0f})")
    g.add_argument("--prepare-ns", type=float, default=t.prepare_ns, help="per-site work outside the window")
    g.add_argument("--ipi-base-ns", type=float, default=t.ipi_base_ns, help=f"sync round floor (default {t.ipi_base_ns:g})")
    g.add_argument("--irq-off-prob", type=float, default=t.irq_off_prob, help="P(a CPU has IRQs off)")
    g.add_argument("--irq-off-scale-ns", type=float, default=None,
                   help=f"mean irq-off residual (default {t.irq_off_scale_ns:.0f}, calibrated)")
    g.add_argument("--ipi-round-ns", type=float, default=None,
                   help="recalibrate the irq-off tail so a round on 24 CPUs averages this")
    g.add_argument("--handler-ns", type=float, default=t.handler_ns, help="int3 handler, one site (45)")
    g.add_argument("--handler-batch-ns", type=float, default=t.handler_batch_ns, help="int3 handler, batch (180)")
    g.add_argument("--stop-machine-ns", type=float, default=t.stop_machine_ns, help="stop_machine fixed cost")
    g.add_argument("--horizon-ns", type=float, default=3.6e12, help="longest allowed patch (default 1 h)")
    g.add_argument("--no-trampolines", action="store_true", help="patch call sites only (a text_poke batch)")


def _timing(args):
    kw = dict(write_ns=args.write_ns, prepare_ns=args.prepare_ns, ipi_base_ns=args.ipi_base_ns,
              irq_off_prob=args.irq_off_prob, handler_ns=args.handler_ns,
              handler_batch_ns=args.handler_batch_ns, stop_machine_ns=args.stop_machine_ns)
    if args.ipi_round_ns is not None:
        if args.irq_off_scale_ns is not None:
            raise ConfigError("ipi_round_ns: give either --ipi-round-ns or --irq-off-scale-ns, not both")
        return Timing.from_round(args.ipi_round_ns, **kw)
    if args.irq_off_scale_ns is not None:
        kw["irq_off_scale_ns"] = args.irq_off_scale_ns
    return Timing(**kw)


def _table(frame):
    """One readable block per configuration."""
    blocks = []
    for _, r in frame.iterrows():
        head = (f"{r.scenario} / {r.strategy} / {r.protocol} / {r.cpus} CPUs / {r.n_sites} sites / "
                f"round {r.ipi_round_ns / 1e3:.1f} us / {r.trials} trials, seed {r.seed}")
        lines = [head, f"  {'metric':18s} {'mean':>13s} {'se':>10s} {'95% interval':>29s} {'closed form':>13s}"]
        for m in METRICS:  # times in human units (4.31 s, not 4.30787e+09 ns); --json keeps ns
            h = functools.partial(human_value, m)
            lines.append(f"  {m:18s} {h(r[m + '_mean']):>13s} {h(r[m + '_se']):>10s} "
                         f"[{h(r[m + '_lo']):>13s}, {h(r[m + '_hi']):>13s}] {h(r[m + '_cf']):>13s}")
        if r.outcome_note:
            lines.append(f"  note: {r.outcome_note}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(args):
    """Build the configurations, load the outcome table, simulate, print."""
    timing = _timing(args)
    if args.bristot:
        print(bristot_comparison(timing).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        return 0
    check_range("trials", args.trials, 2, 10**8, integer=True)
    hot = dict(args.rate) if args.rate else Workload().hot
    workload = Workload(hot=hot, tail_functions=args.sites, tail_rate=args.tail_rate,
                        zipf_s=args.zipf, dispersion=args.dispersion)
    configs = [RaceConfig(args.scenario, strategy, args.protocol, cpus, workload, timing,
                          trampolines=not args.no_trampolines, horizon_ns=args.horizon_ns)
               for strategy in args.strategy for cpus in args.cpus]
    if all(c.strategy == "stop_machine" for c in configs):
        outcomes = PerCallOutcomes.empty(args.scenario, args.entry)  # nothing traps
    else:
        try:
            outcomes = load_outcomes(args.scenario, args.entry)
        except (ImportError, AttributeError) as exc:  # the emulator is not built yet
            print(f"error: the emulator's outcome table is unavailable ({exc})", file=sys.stderr)
            return 1
    frame = simulate_many(configs, outcomes, args.trials, args.seed)
    if args.json:
        records = [{k: _jsonable(v) for k, v in rec.items()} for rec in frame.to_dict("records")]
        print(json.dumps(records, indent=2))
    else:
        print(_table(frame))
    return 0
