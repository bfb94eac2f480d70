"""The workbench's vocabulary: every parameter and data column, its unit and meaning, once.

The command line, the sweep grid, the Parquet and CSV columns, the widgets
and the figures all use the names defined here. ``python -m workbench
columns`` prints this dictionary; :func:`write_columns` writes it beside a
data file, restricted to the columns that file has.

Units are spelled once: ``ns`` (nanoseconds), ``calls/s`` (calls per second
on one CPU), ``count`` (a number of things per patch, or per trapped call
where the meaning says so), ``1`` (a dimensionless ratio or probability),
``bool``, ``text``. A column whose name ends in ``_ns`` is in nanoseconds,
always.

The race simulator's summary statistics come as ``<metric>_<stat>``: for
every metric in :data:`METRICS` and every stat in :data:`STATS`.

Every rate, count, duration and size a user can set has its valid range
here, once (:data:`RANGES`, checked by :func:`check_param` before any
work): the command line, the sweep grid, the scenario and replay files and
the widgets all refuse a value outside it in one line that names the range.
The bounds are physical (no CPU makes more than 10^9 calls a second; a sync
round of more than a second is a hung machine) and keep every quantity the
simulator derives from them (Poisson means, sums over CPUs and windows)
inside float64 and numpy's samplers (numpy's Poisson refuses a mean above
about 9.2e18; at 10^9 calls/s on 65,536 CPUs the patch horizon of an hour
is checked first, ``RaceConfig.horizon_ns``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench.base.errors import check_range
from workbench.base.store import write_atomic

__all__ = ["ARCHES", "BATCHINGS", "BREAKPOINT_BATCHINGS", "COLUMNS", "ENTRIES", "ENTRIES_BY_ARCH", "FORMATS",
           "MC_HANDLERS", "MC_POKE_METHODS", "METRICS", "MODES", "OPS_CHOICES", "POKE_METHODS", "RANGES", "SPLIT", "STATS",
           "STRATEGIES", "Range", "Term", "check_param", "column", "columns_frame_rows", "write_columns"]


@dataclass(frozen=True)
class Term:
    """One named quantity: its unit and a one-line meaning."""

    name: str
    unit: str
    meaning: str


@dataclass(frozen=True)
class Range:
    """The valid range of a user-set quantity: ``lo <= value <= hi``, in the unit of its :class:`Term`."""

    lo: float
    hi: float
    integer: bool = False

    def __str__(self) -> str:
        return f"[{self.lo:g}, {self.hi:g}]"


#: name -> the valid range of every rate, count, duration and size a user sets
RANGES: dict[str, Range] = {
    # the machine and the workload
    "cpus": Range(1, 65536, True),                 # CONFIG_NR_CPUS tops out at 8192 (x86 MAXSMP); headroom
    "hot_rate": Range(0, 1e9),                     # calls/s of one hot function on one CPU
    "tail_rate": Range(0, 1e9),                    # calls/s of all ordinary functions on one CPU
    "tail_functions": Range(0, 2_000_000, True),   # traced functions besides the hot ones
    "zipf_s": Range(0, 10),
    "dispersion": Range(0, 10_000),
    "batch_max": Range(1, 10**9, True),
    # timing, ns
    "sync_round_ns": Range(1e-3, 1e9),             # up to one second per IPI round
    "write_ns": Range(0, 1e9),
    "stop_machine_ns": Range(0, 1e10),
    "irq_off_prob": Range(0, 1),
    # how much work
    "trials": Range(2, 10**8, True),
    "seed": Range(0, 2**63 - 1, True),
    "jobs": Range(1, 4096, True),
    "split": Range(1, 4096, True),
    "schedules": Range(1, 100_000, True),          # explore --mode random
    "random_cpus": Range(1, 16, True),             # explore --mode random
    "mc_cpus": Range(2, 3, True),                  # model-check: calling CPUs (the state space grows steeply)
    "n_ordinary": Range(1, 64, True),              # ordinary traced functions in the emulated image
    "points": Range(1, 1_000_000, True),           # points of one sweep (more than 10,000 need --force)
}


def check_param(name: str, value, *, label: str | None = None):
    """*value* checked against ``RANGES[name]`` (an int if the range is integral); ConfigError naming
    *label* (default *name*) and the range otherwise."""
    r = RANGES[name]
    v = check_range(label or name, value, r.lo, r.hi, integer=r.integer)
    return int(v) if r.integer else v


#: the int3 handler strategies, in the order every table and figure uses
#: (their code and the kernel commit each follows: :mod:`workbench.kernel.int3`)
STRATEGIES = ("skip", "emulate_regs_caller", "emulate_new", "emulate_old", "spin", "stop_machine")

#: the emulated kernels: i386 (the default) and x86_64
ARCHES = ("i386", "x86_64")

#: the int3 entries (``arch/x86/entry/entry_32.S``): v5.1 leaves pt_regs on the
#: interrupted stack; v5.3 (3c88c692c287) copies it down behind a 5-word gap
ENTRIES = ("v5.1", "v5.3")

#: the int3 entries of each arch; x86_64's (``arch/x86/entry/entry_64.S``): v5.1 has
#: no gap, v5.2 (2700fefdb2d9) copies the frame six words down
ENTRIES_BY_ARCH = {"i386": ENTRIES, "x86_64": ("v5.1", "v5.2")}

#: the poke method: how the emulated patcher writes one batch of instruction changes into live
#: text (``arch/x86/kernel/alternative.c``), name -> what it does (:mod:`workbench.kernel.text_poke`);
#: ``naive`` and ``no_sync`` are negative controls no kernel ships
POKE_METHODS = {
    "breakpoint": "int3 on every changed site, sync, tails, sync, first bytes, sync (text_poke_bp)",
    "stop_machine": "stop every CPU, write whole instructions, sync, restart: no int3 window",
    "naive": "negative control: write each byte in place, no int3 (torn instructions)",
    "no_sync": "negative control: the breakpoint method without its three syncs",
}

#: the batching of the breakpoint poke method: a breakpoint round per site (``text_poke_bp()``
#: site by site) or ftrace's one breakpoint batch (``text_poke_bp_batch()``); the emulator takes
#: one of these and its poke method apart
BREAKPOINT_BATCHINGS = ("per_site", "batched")

#: the batching: how one ftrace update groups its sites into poke rounds -- the breakpoint
#: batchings, or one ``stop_machine()`` for every site (the race simulator's choice)
BATCHINGS = (*BREAKPOINT_BATCHINGS, "stop_machine")

#: the ftrace ops a user can name on the command line (:func:`workbench.emulate.watch.watch_call`)
OPS_CHOICES = ("tracer", "livepatch", "livepatch-shared")

#: the model checker's poke methods: how its patcher writes the batch into live text. A name it
#: shares with :data:`POKE_METHODS` (breakpoint, no_sync, stop_machine) means what it means there,
#: the checker also modelling the descriptor's clears; the others are variants of the breakpoint
#: method's end, constructed negative controls among them (each one's kernel history:
#: :data:`workbench.emulate.mc.config.POKE_METHOD_HISTORY`)
MC_POKE_METHODS = ("breakpoint", "racy_clear", "racy_clear_nosync3", "fixed_clear_nosync3", "no_sync", "stop_machine")

#: the model checker's int3 handler: the strategy as shipped, or the negative control that waits with IF clear
MC_HANDLERS = ("strategy", "irqoff_wait")

#: how the emulator interleaves a patch with calling CPUs (:func:`workbench.emulate.explore.explore`)
MODES = ("exhaustive", "random")

#: subtrees a model-checked configuration is split into by default, at least this many
#: where its tree has them (:func:`workbench.emulate.mc.experiment.check_all`)
SPLIT = 16

#: the file formats every figure is written in (:mod:`workbench.figures.style`)
FORMATS = ("svg", "pdf", "png")

#: what the race simulator counts per patch
METRICS = ("trapped", "violations", "dropped_tracer", "dropped_livepatch", "spurious", "crashes",
           "deadlocks", "stall_ns", "window_ns", "patch_ns", "ipis")

#: the summary statistics of each metric
STATS = {
    "mean": "Monte Carlo mean over the trials",
    "se": "standard error of that mean",
    "lo": "lower end of the 95% interval of the mean",
    "hi": "upper end of the 95% interval of the mean",
    "cf": "closed-form expectation",
}

_TERMS = [
    # what was run
    Term("arch", "text", "emulated kernel architecture: " + ", ".join(ARCHES)),
    Term("scenario", "text", "patch scenario: which ftrace ops are registered before and after"),
    Term("kernel", "text", "which kernel can run the scenario: real i386, or i386 sketch (the seed mail's "
                           "livepatch world, x86_64-only features on i386)"),
    Term("strategy", "text", "int3 handler strategy: " + ", ".join(STRATEGIES)),
    Term("entry", "text", "int3 entry whose outcomes are used: " + ", ".join(ENTRIES) + " (i386), "
         + ", ".join(ENTRIES_BY_ARCH["x86_64"]) + " (x86_64)"),
    Term("batching", "text", "how one update groups its sites into poke rounds: " + ", ".join(BATCHINGS)),
    Term("poke_method", "text", "how the emulated patcher writes a batch into live text: "
         + ", ".join(POKE_METHODS) + "; the model checker's: " + ", ".join(MC_POKE_METHODS)),
    Term("batch_max", "count", "batched: most sites per breakpoint batch (256 from v5.6); empty: one batch"),
    Term("mode", "text", "emulator interleaving: exhaustive or random"),
    Term("seed", "count", "the one random seed of a run; same seed, same numbers"),
    Term("stream", "count", "per-point random stream, spawned from a hash of the point's parameters"),
    Term("trials", "count", "Monte Carlo trials per point"),
    Term("outcomes", "text", "emulator: per-call outcomes measured by the emulator; none: count traps only"),
    # provenance (workbench.base.provenance)
    Term("code_version", "text", "hash of the package's sources that produced the row"),
    Term("workbench_version", "text", "the package version that produced the row"),
    Term("grid", "text", "name of the grid (sweep) the row belongs to"),
    Term("kernel_tree", "text", "whose i386 trampolines ran: workbench (ours) or a kernel tree's "
         "linux-<version>@<digest of its ftrace_32.S, ptrace.h, Makefile> (docs/KERNEL_TREE.md)"),
    Term("kernel_tree_path", "text", "model checker: the root of the kernel tree whose trampolines ran (empty: ours)"),
    Term("run", "text", "quick (reduced grid), full (the published grid) or custom"),
    # the machine and the workload
    Term("cpus", "count", "CPUs calling traced functions"),
    Term("hot", "calls/s", "per-CPU call rate of each named hot function, NAME=RATE,..."),
    Term("tail_functions", "count", "ordinary traced functions besides the hot ones"),
    Term("tail_rate", "calls/s", "total per-CPU call rate of the ordinary functions"),
    Term("zipf_s", "1", "Zipf exponent of the ordinary functions' rates"),
    Term("dispersion", "1", "gamma-Poisson over-dispersion of call counts (0: Poisson)"),
    Term("trampolines", "bool", "the trampolines' own calls are patched too (false: call sites only)"),
    Term("n_sites", "count", "call sites the patch changes"),
    # timing
    Term("sync_round_ns", "ns", "mean IPI sync round on 24 CPUs: the one knob of the round-latency model"),
    Term("ipi_round_ns", "ns", "mean IPI sync round at this point's CPU count (derived from sync_round_ns)"),
    Term("write_ns", "ns", "one text_poke write of an int3, a tail or a first byte"),
    Term("irq_off_prob", "1", "share of time a CPU runs with interrupts off"),
    Term("irq_off_scale_ns", "ns", "mean residual irq-off time a sync waits for"),
    Term("ipi_base_ns", "ns", "floor of a sync round on an idle machine"),
    Term("prepare_ns", "ns", "per-site work outside the int3 window"),
    Term("handler_ns", "ns", "int3 handler time, one site"),
    Term("handler_batch_ns", "ns", "int3 handler time, a batch (bsearch over its sites)"),
    Term("stop_machine_ns", "ns", "fixed cost of one stop_machine round"),
    Term("horizon_ns", "ns", "longest patch the simulator follows"),
    # race metrics
    Term("trapped", "count", "calls that hit an int3 (per patch; in the emulator's calls frame, 0 or 1 per call)"),
    Term("violations", "count", "trapped calls that missed a handler both instructions run (per patch)"),
    Term("dropped_tracer", "count", "tracer invocations lost by trapped calls (per patch)"),
    Term("dropped_livepatch", "count", "livepatch invocations lost by trapped calls (per patch)"),
    Term("spurious", "count", "handlers that ran although neither instruction runs them (per patch)"),
    Term("crashes", "count", "trapped calls whose CPU crashed (per patch)"),
    Term("deadlocks", "count", "trapped calls whose CPU can never leave the int3 handler (per patch)"),
    Term("stall_ns", "ns", "CPU time stalled: stop_machine rounds, spinning in the int3 handler"),
    Term("window_ns", "ns", "time the int3 windows are open, summed over the patch"),
    Term("patch_ns", "ns", "duration of the whole patch"),
    Term("ipis", "count", "IPI sync rounds of the patch"),
    Term("outcome_note", "text", "what the outcome table could not say for this point"),
    Term("batch_max", "count", "sites per breakpoint batch (None: one batch of every site, as before v5.6)"),
    # summary tables (data/summary)
    Term("stall_cpu_ns", "ns", "stall CPU-time per patch, summed over CPUs"),
    Term("dropped_per_patch", "count", "tracer plus livepatch invocations dropped per patch"),
    Term("violations_per_patch", "count", "violations per patch"),
    Term("deadlocks_per_patch", "count", "deadlocked calls per patch"),
    Term("metric", "text", "the metric a row is about"),
    Term("points", "count", "sweep points behind a row"),
    Term("z_mean", "1", "mean of (Monte Carlo - closed form) / standard error over the points"),
    Term("z_sd", "1", "standard deviation of those standardised differences"),
    Term("z_max_abs", "1", "largest absolute standardised difference"),
    Term("rel_diff_max", "1", "largest relative difference between Monte Carlo and closed form"),
    Term("quantity", "text", "what a row of the Bristot comparison measures"),
    Term("unit", "text", "the unit of a row's values"),
    Term("model_per_site", "1", "the model's value, one breakpoint round per site (in the row's unit)"),
    Term("model_batched", "1", "the model's value, one batch (in the row's unit)"),
    Term("model_ratio", "1", "model_batched / model_per_site"),
    Term("measured_per_site", "1", "Bristot's measurement, per site (in the row's unit)"),
    Term("measured_batched", "1", "Bristot's measurement, batched (in the row's unit)"),
    Term("measured_ratio", "1", "measured_batched / measured_per_site"),
    Term("kind", "text", "how the model relates to a measurement: structural, calibrated or input"),
    # the emulator's calls frame and outcome table
    Term("schedule", "count", "schedule index (exhaustive) or seed (random) of an emulated run"),
    Term("cpu", "count", "emulated CPU that made the call"),
    Term("function", "text", "traced function called"),
    Term("site_kind", "text", "livepatched (the functions a regs-saving ops filters: live-patched, or probed in "
                              "the probe scenarios) or ordinary"),
    Term("trap_site", "text", "where the call trapped: fentry, ftrace_call, ftrace_regs_call"),
    Term("trap_phase", "text", "patch step in force when the call trapped"),
    Term("phase", "text", "patch step in force when the call started"),
    Term("trapped_placements", "count", "trapped instruction placements (weighted schedules) behind a row of the "
         "outcome table: not calls, and not comparable across strategies"),
    Term("violation", "count", "per trapped call: a handler both instructions run did not run"),
    Term("crash", "count", "per trapped call: the emulated CPU faulted or its state was corrupted"),
    Term("delay_traps", "count", "per trapped call: int3 entries beyond the first (spin's delay)"),
    Term("deadlock", "count", "per trapped call: the CPU can never leave the int3 handler (a sync waits on it)"),
    Term("schedules_raw", "count", "instruction placements explored"),
    Term("schedules_distinct", "count", "placements left after merging equivalent ones"),
]

#: name -> :class:`Term`, for every parameter and column
COLUMNS: dict[str, Term] = {t.name: t for t in _TERMS}
for _m in METRICS:
    for _s, _what in STATS.items():
        _base = COLUMNS[_m]
        COLUMNS[f"{_m}_{_s}"] = Term(f"{_m}_{_s}", _base.unit, f"{_what} of: {_base.meaning}")
del _m, _s, _what, _base


def column(name: str) -> Term:
    """The :class:`Term` of *name*; raises ``KeyError`` naming the column if it is undefined."""
    try:
        return COLUMNS[name]
    except KeyError:
        raise KeyError(f"{name}: not in the workbench vocabulary (workbench.base.vocabulary)") from None


def columns_frame_rows(names=None) -> list[dict]:
    """Rows ``{column, unit, meaning}`` for *names* (default: the whole vocabulary)."""
    names = list(COLUMNS) if names is None else list(names)
    return [{"column": n, "unit": column(n).unit, "meaning": column(n).meaning} for n in names]


def write_columns(path: Path, names) -> Path:
    """Write the JSON file *path*: ``{column, unit, meaning}`` of each of *names* (sorted, unique).

    Written beside data files (``columns.json`` in ``data/sweeps`` and
    ``data/summary``, ``<name>.columns.json`` beside a ``sweep --out`` file).
    Raises ``KeyError`` for a column the vocabulary does not define, so no
    data file carries an undefined column.
    """
    text = json.dumps(columns_frame_rows(sorted(set(map(str, names)))), indent=1, ensure_ascii=False) + "\n"
    return write_atomic(Path(path), text.encode(), what="columns")
