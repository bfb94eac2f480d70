"""``python -m workbench simulate``: the race simulator on the command line.

The options are the race experiment's parameters
(:data:`workbench.race.experiment.RACE_PARAMETERS`), under the same names as
``sweep --set`` and the sweep's columns, and a configuration runs exactly as
a sweep point does (one timing model, one seed stream per configuration): so
``simulate --cpus 64 --sync-round-ns 1e5`` and the sweep point
``cpus=64, sync_round_ns=1e5`` give the same numbers. ``--strategy`` and
``--cpus`` take comma-separated lists; every combination is a configuration.
The other options take one value: to sweep the round or any other
parameter, use ``sweep --set sync_round_ns=1e3,1e5,1e7`` (a Parquet file of
every point). ``--sync-round-ns`` is the model's one round-latency knob, the
mean IPI sync round on 24 CPUs; the round at the configuration's CPU count
(longer on more CPUs) is printed beside it.

Prints, per configuration, the Monte Carlo mean, standard error and 95%
interval of every metric next to the closed form. ``--json`` prints the
records; ``--bristot`` prints the model beside Bristot's measurement. The
per-call outcomes come from the emulator (``workbench.emulate.explore``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from typing import TYPE_CHECKING

from workbench.base.errors import ConfigError
from workbench.base.units import human_ns
from workbench.base.vocabulary import COLUMNS, METRICS
from workbench.race.parameters import RACE_PARAMETERS

if TYPE_CHECKING:
    from workbench.sweep.engine import Grid

__all__ = ["configure", "run"]

#: parameters that take a comma-separated list (each value is a configuration)
_LISTS = ("strategy", "cpus")
#: what a default of None stands for, where it is not the timing model's calibrated value
_NONE_MEANS = {"batching": "the strategy's own (batched; stop_machine for that strategy)",
               "hot": "do_IRQ=1000,__migrate_task=20,schedule=5000",
               "batch_max": "one batch of every site, as before v5.6 (v5.6+: 256)",
               "entry": "the arch's latest (v5.3 on i386, v5.2 on x86_64)"}


def _hot(text: str) -> str:
    """``NAME=RATE,NAME=RATE`` as the JSON object ``parse_assignments`` reads."""
    rates = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            rates[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=CALLS_PER_SECOND,..., got {text!r}") from None
    return json.dumps(rates)


def configure(parser):
    """Add one option per race parameter (same name as the sweep's), plus seed, json, bristot."""
    for name, default in RACE_PARAMETERS.items():
        term = COLUMNS[name]
        shown = (_NONE_MEANS.get(name, "the model's calibrated default") if default is None
                 else json.dumps(default))
        extra = " (comma-separated list)" if name in _LISTS else ""
        unit = f" [{term.unit}]" if term.unit not in ("text", "bool", "count", "1") else ""
        kw = dict(type=_hot, metavar="NAME=RATE,...") if name == "hot" else {}
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, **kw,
                            help=f"{term.meaning}{unit}{extra}; default {shown}")
    parser.add_argument("--seed", type=int, default=0, help="the one random seed; same seed, same numbers")
    parser.add_argument("--json", action="store_true", help="print the summary records as JSON")
    parser.add_argument("--bristot", action="store_true", help="print the model beside Bristot's 24-CPU measurement")


def grid_of(args) -> Grid:
    """The race grid the options describe (what ``sweep --set`` would build)."""
    from workbench.race.experiment import RACE  # start-up: pandas and the simulator, not for parsing
    from workbench.sweep.engine import Grid, parse_assignments  # start-up: pandas, not for parsing

    given = {name: getattr(args, name) for name in RACE_PARAMETERS if getattr(args, name) is not None}
    for name, text in given.items():
        if name not in _LISTS and name != "hot" and "," in text:
            raise ConfigError(f"{name}: takes one value, got {text!r}")
    sets = [f"{name}={text}" for name, text in given.items() if name != "hot"]
    axes = dict(parse_assignments(sets, RACE).axes) if sets else {}
    if "hot" in given:  # one mapping, not a list of values
        axes["hot"] = [json.loads(given["hot"])]
    return Grid(axes, experiment=RACE)


def _table(frame) -> str:
    """One readable block per configuration."""
    from workbench.ui.format import human_value  # start-up: pandas, not for parsing

    blocks = []
    for _, r in frame.iterrows():
        batches = "" if _jsonable(r.get("batch_max")) is None else f" of <= {int(r.batch_max)}"
        knob = f", knob {human_ns(r.sync_round_ns)} on 24" if _jsonable(r.get("sync_round_ns")) is not None else ""
        head = (f"{r.arch} / {r.scenario} / {r.strategy} / {r.batching}{batches} / {r.cpus} CPUs / {r.n_sites} sites / "
                f"round {human_ns(r.ipi_round_ns)} on {r.cpus} CPUs{knob} / {r.trials} trials, seed {r.seed}")
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
    """Build the configurations, simulate each as a sweep point, print."""
    if args.bristot:
        used = ("sync_round_ns", "write_ns", "irq_off_prob", "stop_machine_ns")
        for name in RACE_PARAMETERS:
            if name not in used and getattr(args, name) is not None:
                raise ConfigError(f"{name}: --{name.replace('_', '-')} does not apply to --bristot (it uses only "
                                  "the timing options: " + ", ".join("--" + u.replace("_", "-") for u in used) + ")")
        if args.json or args.seed != 0:
            raise ConfigError(f"{'json' if args.json else 'seed'}: --{'json' if args.json else 'seed'} does not "
                              "apply to --bristot (a closed-form table)")
    from workbench.race.experiment import RACE  # start-up: pandas and the simulator, not for parsing
    from workbench.race.bristot import bristot_comparison  # start-up: NumPy, pandas, not for parsing
    from workbench.race.timing import Timing  # start-up: NumPy, not for parsing
    from workbench.sweep.engine import sweep  # start-up: pandas, not for parsing

    grid = grid_of(args)
    if args.bristot:
        point = RACE.normalize(grid.points()[0])
        timing = Timing.for_round(point["sync_round_ns"], write_ns=point["write_ns"],
                                  irq_off_prob=point["irq_off_prob"], stop_machine_ns=point["stop_machine_ns"])
        print(bristot_comparison(timing).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        return 0
    frame = sweep(grid, RACE, seed=args.seed, backend="serial", progress=False)
    if args.json:
        records = [{k: _jsonable(v) for k, v in rec.items()} for rec in frame.to_dict("records")]
        print(json.dumps(records, indent=2))
    else:
        print(_table(frame))
    return 0
