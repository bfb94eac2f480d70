"""The statistical race simulator: trapped, dropped and stalled calls on N CPUs.

It answers: on N CPUs calling these functions at these rates, while ftrace
patches these sites with this protocol and these timings, how many calls
trap on an int3, what do they do under each handler strategy, and what does
it cost? Two answers side by side: a closed form (:func:`closed_form`) and a
vectorised Monte Carlo (:func:`simulate`) that checks it.

The model (documented in ``docs/RACE.md``):

* **Workload** (:class:`workbench.race.workload.Workload`). Calls to each traced function arrive on
  each CPU as a Poisson process with a per-CPU rate: named hot functions plus
  a tail of M ordinary functions with a Zipf profile and a total rate. With
  ``dispersion > 0`` each window's group rate is multiplied by a Gamma(1/d, d)
  factor (gamma-Poisson: same mean, variance ``mu + d mu^2``): bursty calls.
* **Patch timeline** (:data:`PLANS`, :mod:`workbench.race.timing`). The ftrace
  order of docs/KERNEL.md §11: trampoline calls (``ftrace_call``,
  ``ftrace_regs_call``) first, one breakpoint protocol each; then the call
  sites, one protocol per site (``per_site``), one for all (``batched``), or
  everything under ``stop_machine``. A site traps calls from its int3
  write until its new first byte is written (coherent instruction fetch,
  as on snooping x86 hardware and in the emulator with ``coherent_fetch``;
  the final sync only bounds how long a CPU may hold stale bytes):
  ``W = 2w + R1 + R2`` for one site (int3 written; sync; tail write; sync;
  first-byte write) and ``W_i = 2Kw + R1 + R2`` for every one of K batched
  sites written in the same order in each pass (w: write cost, R: sync
  rounds; the third round R3 and the int3 write itself lie outside the
  window but inside ``patch_ns``). A trampoline call's window traps the
  calls of every function routed through that trampoline at the time.
* **Outcomes** (:class:`PerCallOutcomes`). Trapped calls in a window with
  per-CPU rate sum L on N CPUs are Poisson(N L W) for the strategies that
  do not block; each is multiplied by the per-trapped-call means that the
  emulator measured for (strategy, site kind, trap site)
  (``workbench.emulate.explore.load_outcome_table``), never typed in.
* **spin blocks.** A CPU spinning on an int3 makes no further calls until
  the site's new first byte is written (the end of the window), so it traps
  at most once per window: its first call into the window's armed sites at
  ``T ~ Exp(L)`` traps if ``T < W``, with probability ``1 - e^(-L W)``, and
  it then waits ``W - T``: ``E[wait | W] = W - (1 - e^(-L W)) / L``. Sites
  sharing a window (a batch, a trampoline call) share L (their rates
  summed; the trap's site kind is drawn by rate); per-site windows are
  disjoint, so a CPU may trap once in each. On N CPUs the trapping CPUs are
  Binomial(N, 1 - e^(-L W)). Expectations over the random W are taken by
  quadrature over its two rounds (:func:`round_nodes`); as L -> 0 they
  tend to ``N L E[W]`` and ``N L E[W^2] / 2``, as L -> inf to N per window
  and ``N E[W]``.
* **Cost** (``stall_ns``): the int3 handler per trapped call (45 ns single,
  180 ns batch search); ``spin`` adds each trapped CPU's wait;
  ``stop_machine`` stalls all N CPUs for the whole patch.

Aggregation keeps it cheap: sites of one kind sharing a window are one group
with a summed rate (a sum of independent Poissons is Poisson). Per-site
windows differ, so the ``EXACT_SITES`` busiest sites of a kind get their own
drawn rounds and the rest enter as a rate-weighted window sum drawn from a
gamma with the exact mean and variance (under spin: their summed trap
probabilities, with the exact mean of ``sum_i E[1 - e^(-l_i W_i)]`` over the
rest's own rates, see :func:`rest_sums`). Every Monte Carlo mean is unbiased for
its closed form; only higher moments of those aggregated parts are approximate.
A window's two rounds are the first two of the three rounds its protocol run
draws, so window and ``patch_ns`` stay coupled within a trial.
"""

from dataclasses import dataclass, field, fields
import hashlib
from functools import lru_cache
import math

import numpy as np
import pandas as pd

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.numeric import fdot
from workbench.base.units import NS
from workbench.base.version import emulator_version
from workbench.base.vocabulary import METRICS, PROTOCOLS, STRATEGIES
from workbench.emulate.scenario import check_scenario, load_scenario
from workbench.kernel.ftrace import Sync, TextBatch, plan_transition
from workbench.kernel.image import build_image
from workbench.race.stagger import stagger_eval, stagger_tables
from workbench.race.spin import (spin_draw_shared, spin_expect, spin_per_site, spin_shared, spin_wait,
                                 window_nodes)
from workbench.race.timing import BRISTOT, Timing, finite_range, gamma_matched
from workbench.race.workload import EXACT_SITES, LIVEPATCHED, Sites, Workload, site_summary

__all__ = [
    "STRATEGIES", "PROTOCOLS", "SITE_KINDS", "TRAP_SITES", "METRICS",
    "LIVEPATCHED", "PLANS", "Stage", "Workload", "RaceConfig", "PerCallOutcomes",
    "closed_form", "config_stream", "simulate", "simulate_many", "load_outcomes", "bristot_comparison",
    "derive_plan", "EXACT_SITES", "TP_VEC_MAX",
    "draw_chunk", "patch_timeline", "trap_phase_weights",
]



SITE_KINDS = ("livepatched", "ordinary")
TRAP_SITES = ("fentry", "ftrace_call", "ftrace_regs_call")
#: reported metrics, in column order
#: metric <- outcome-table column (per-trapped-call mean)
_OUTCOME_COLUMNS = {"violations": "violation", "dropped_tracer": "dropped_tracer",
                    "dropped_livepatch": "dropped_livepatch", "spurious": "spurious",
                    "crashes": "crash", "deadlocks": "deadlock"}
_CHUNK = 32768  # trials per vectorised chunk: bounds memory, not results

#: Sites per breakpoint batch from v5.6 on (derived; docs/RACE.md "Batches as
#: the kernel cuts them"). From v5.6 (768ae4406a5c "x86/ftrace: Use
#: text_poke()") ``ftrace_replace_code()`` (arch/x86/kernel/ftrace.c) queues
#: every record with ``text_poke_queue()`` and ends with ``text_poke_finish()``;
#: ``text_poke_queue()`` flushes the queue as one ``text_poke_bp_batch()``
#: when ``tp_vec_nr == TP_VEC_MAX`` or the next address is below the last
#: queued one (``tp_order_fail``; ftrace walks its records in address order).
#: ``TP_VEC_MAX = PAGE_SIZE / sizeof(struct text_poke_loc)`` in
#: arch/x86/kernel/alternative.c ("x86/alternatives, jump_label: Provide
#: better text_poke() batching interface", in the same v5.6 pull as
#: 768ae4406a5c). v5.6's struct, after "x86/alternative: Remove
#: text_poke_loc::len" and 4531ef6a8aaf "x86/alternative: Shrink
#: text_poke_loc" (same pull), is ``{s32 rel_addr; s32 rel32; u8 opcode;
#: const u8 text[POKE_MAX_OPCODE_SIZE = 5]}``: 4 + 4 + 1 + 5 = 14 bytes,
#: padded to its s32 alignment, 16 on i386 and x86_64 alike (the commit:
#: "shrinks struct text_poke_loc to 16 bytes, and consequently increases
#: TP_VEC_MAX from 170 to 256"); 4096 / 16 = 256. The layout before it,
#: ``{void *addr; int len; s32 rel32; u8 opcode; u8 text[5]}``, is 24 bytes
#: on x86_64 (170) and 20 on i386 (204), but no released ftrace queued with
#: it. Before v5.6 ftrace ran its own breakpoint protocol over all records
#: at once: ``batch_max=None``.
TP_VEC_MAX = 4096 // 16


@dataclass(frozen=True)
class Stage:
    """One step of a scenario's ordered patch plan.

    ``target`` is ``ftrace_call`` / ``ftrace_regs_call`` (one trampoline call
    rewritten; ``kinds`` = site kinds routed through that trampoline then),
    ``sites`` (``kinds`` = site kinds whose call sites change) or ``publish``
    (one sync round after publishing the ops pointer, no text change).
    ``functions``: the live-patched functions the step involves (routed
    through the trampoline, or whose sites change); with one ftrace update
    per livepatch ops (docs/KERNEL.md §2a) a step can involve only some.
    """

    target: str
    kinds: tuple = ()
    functions: tuple = ()


class _Plans(dict):
    """Ordered plans per scenario, derived once from the emulator's own
    kernel-ordered plan (:func:`derive_plan`), so the simulator and the
    emulator can never patch in different orders."""

    version = None  #: the emulator version the plans were derived from

    def __missing__(self, scenario):
        self[scenario] = plan = derive_plan(scenario)
        return plan

    def refresh(self) -> None:
        """Forget the plans if the emulator's sources changed since they were derived (a live edit)."""
        now = emulator_version()
        if now != self.version:
            self.clear()
            self.version = now


#: scenario -> tuple of :class:`Stage` (filled on first use)
PLANS = _Plans()

_TRAMPOLINE_OF = {"ftrace_call": "ftrace_caller", "ftrace_regs_call": "ftrace_regs_caller"}


def derive_plan(scenario):
    """The :class:`Stage` tuple of *scenario* derived from the emulator's plan.

    Walks ``workbench.emulate.scenario.load_scenario(scenario).plan(image)`` (the
    kernel-ordered text batches and syncs) and, for each trampoline-call
    batch, records the site kinds whose sites call that trampoline at that
    moment (the before state until the sites batch, the after state from
    then on). Fills :data:`PLANS`; needs the emulator's image (binutils).
    """
    sc, image = load_scenario(scenario), build_image()
    sc.states(image)  # refuses a transition that changes nothing
    lp = sc.livepatched()
    kind = {fn: "livepatched" if fn in lp else "ordinary" for fn in image.functions}
    stages = []
    for before, after in sc.updates(image):  # one ftrace update per ops (un)registered
        state = before
        for step in plan_transition(before, after):
            if isinstance(step, Sync):
                stages.append(Stage("publish"))
            elif isinstance(step, TextBatch) and step.name == "sites":
                stages.append(Stage("sites", tuple(k for k in SITE_KINDS
                                                   if any(kind[c.name] == k for c in step.changes)),
                                    tuple(c.name for c in step.changes if c.name in lp)))
                state = after
            elif isinstance(step, TextBatch):
                target = step.name.split(":")[0]
                fns = [fn for fn in image.functions if state.site_target(fn) == _TRAMPOLINE_OF[target]]
                stages.append(Stage(target, tuple(k for k in SITE_KINDS if any(kind[f] == k for f in fns)),
                                    tuple(f for f in fns if f in lp)))
    return tuple(stages)


@dataclass(frozen=True)
class RaceConfig:
    """One configuration of the race: scenario, strategy, protocol, CPUs, workload, timing.

    ``protocol`` defaults to ``stop_machine`` for the ``stop_machine``
    strategy and ``batched`` (ftrace's protocol) otherwise; the two must
    agree. ``trampolines=False`` drops the trampoline-call stages (a plain
    text_poke batch, as in Bristot's jump-label measurement). The expected
    patch (hence every armed window) must fit in ``horizon_ns``.
    ``patcher_calls=False`` (the kernel): the CPU running ``text_poke_bp``
    is reached only by interrupt-context calls while it patches
    (:func:`_caller_share`); ``True`` lets it call at full rate like the
    others (all N CPUs alike: the textbook ``N L W`` that the hand checks
    of the formulas use). ``batch_max`` (``batched`` only): at most this
    many sites per breakpoint batch, as ``text_poke_queue()`` cuts them from
    v5.6 (:data:`TP_VEC_MAX`); None: one batch of every site, as ftrace did
    before v5.6. Raises :class:`ConfigError` naming the bad parameter.
    """

    scenario: str = "seed"
    strategy: str = "skip"
    protocol: str = None
    cpus: int = 64
    workload: Workload = field(default_factory=Workload)
    timing: Timing = field(default_factory=Timing)
    trampolines: bool = True
    horizon_ns: float = 3.6e12
    patcher_calls: bool = False
    batch_max: int = None

    def __post_init__(self):
        check_scenario(self.scenario)
        check_choice("strategy", self.strategy, STRATEGIES)
        implied = "stop_machine" if self.strategy == "stop_machine" else "batched"
        protocol = implied if self.protocol is None else check_choice("protocol", self.protocol, PROTOCOLS)
        if (protocol == "stop_machine") != (self.strategy == "stop_machine"):
            raise ConfigError(f"protocol: {protocol!r} does not go with strategy {self.strategy!r}; "
                              "stop_machine is both a strategy and its protocol")
        object.__setattr__(self, "protocol", protocol)
        if self.batch_max is not None:
            if isinstance(self.batch_max, bool):
                raise ConfigError(f"batch_max: expected a whole number >= 1 or None, got {self.batch_max!r}")
            object.__setattr__(self, "batch_max",
                               int(check_range("batch_max", self.batch_max, 1, 10**9, integer=True)))
            if protocol != "batched":
                raise ConfigError(f"batch_max: cuts the batched protocol into batches; protocol {protocol!r} "
                                  "has none (leave batch_max unset)")
        object.__setattr__(self, "cpus", int(check_range("cpus", self.cpus, 1, 65536, integer=True)))
        object.__setattr__(self, "horizon_ns", finite_range("horizon_ns", self.horizon_ns, 1))
        if not isinstance(self.workload, Workload) or not isinstance(self.timing, Timing):
            raise ConfigError("workload/timing: expected Workload and Timing instances")
        missing = [n for n in LIVEPATCHED if n not in dict(self.workload.hot)]
        if missing:
            raise ConfigError(f"rate: scenario {self.scenario!r} live patches {', '.join(LIVEPATCHED)}; "
                              f"give {', '.join(missing)} a rate")
        patch = _closed(self, None)["patch_ns"]
        if patch > self.horizon_ns:
            raise ConfigError(f"horizon_ns: the patch and its armed windows last {patch / 1e9:.4g} s "
                              f"on average, longer than the horizon {self.horizon_ns / 1e9:.4g} s; "
                              "raise horizon_ns or shorten the timing")


class PerCallOutcomes:
    """Per-trapped-call expected outcomes for one scenario and kernel entry.

    Built from the emulator's outcome table (one row per scenario, entry,
    strategy, site_kind, trap_site with ``trapped_placements`` and per-call means; see
    docs/ARCHITECTURE.md). Several rows for one key are averaged weighted by
    ``trapped_placements``. A key with no row (``stop_machine`` never traps) counts as
    zero per call (:meth:`has` tells; :func:`simulate` notes it). Delay
    columns (``delay_insns``/``delay_traps``) are not used: real-time cost is
    modelled by the handler cost and, for spin, the remaining window.
    """

    COLUMNS = ("violation", "dropped_tracer", "dropped_livepatch", "spurious", "crash", "deadlock")
    KEY = ("strategy", "site_kind", "trap_site")

    def __init__(self, frame, scenario, entry="v5.3", patching=None):
        self.scenario, self.entry = scenario, entry
        #: calls trapped on the patching CPU itself (an interrupt inside text_poke_bp(): the
        #: patch frozen in its phase; workbench.emulate.patching_cpu), or None: as any other CPU
        self.patching = None if patching is None or not len(patching) else PerCallOutcomes(patching, scenario, entry)
        if "deadlock" not in frame.columns:  # a table from before deadlocks were recorded
            frame = frame.assign(deadlock=0.0)
        need = set(self.KEY) | set(self.COLUMNS) | {"trapped_placements"}
        if not need <= set(frame.columns):
            raise ConfigError(f"outcomes: table lacks columns {sorted(need - set(frame.columns))}")
        rows = frame
        for col, val in (("scenario", scenario), ("entry", entry)):
            if col in rows.columns:
                rows = rows[rows[col] == val]
        if len(frame) and not len(rows):
            raise ConfigError(f"outcomes: table has no rows for scenario {scenario!r}, entry {entry!r}")
        values = rows[list(self.COLUMNS)].to_numpy(float)
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ConfigError("outcomes: per-call means must be finite and >= 0")
        self._means, self._n, self._phases = {}, {}, {}
        weights = rows["trapped_placements"].to_numpy(float)
        for key, idx in rows.groupby(list(self.KEY)).indices.items():
            w = weights[idx] if weights[idx].sum() > 0 else np.ones(len(idx))
            self._means[key] = np.average(values[idx], axis=0, weights=w)
            self._n[key] = int(weights[idx].sum())
        if "trap_phase" in rows.columns and len(rows):
            # the protocol step a trap happened after: int3, sync1, tail, sync2, first
            step = rows["trap_phase"].astype(str).str.rsplit(":", n=1).str[-1]
            for key, idx in rows.assign(_step=step).groupby(list(self.KEY) + ["_step"]).indices.items():
                w = weights[idx] if weights[idx].sum() > 0 else np.ones(len(idx))
                self._phases.setdefault(key[:-1], {})[key[-1]] = np.average(values[idx], axis=0, weights=w)

    def on_patching_cpu(self) -> "PerCallOutcomes":
        """The outcomes of a call trapped on the patching CPU (these, if none were measured)."""
        return self if self.patching is None else self.patching

    @classmethod
    def empty(cls, scenario, entry="v5.3"):
        """No measured outcomes: every trapped call counts zero (counting only)."""
        cols = ("scenario", "entry", "trapped_placements") + cls.KEY + cls.COLUMNS
        return cls(pd.DataFrame(columns=cols), scenario, entry)

    def per_call(self, strategy, site_kind, trap_site, phase_weights=None):
        """Mapping metric -> expected count per trapped call (0 where no row).

        With *phase_weights* (protocol step -> probability that a trapped
        call trapped in the phase that step opens; :func:`trap_phase_weights`)
        the per-phase means are averaged with those weights, the time a call
        spends in each phase, rather than with the emulator's schedule
        counts (which count instruction placements, not time). Phases the
        table lacks drop out and the rest are renormalised.
        """
        key = (strategy, site_kind, trap_site)
        means = self._means.get(key)
        phases = self._phases.get(key)
        if phase_weights and phases:
            w = {p: phase_weights.get(p, 0.0) for p in phases}
            total = sum(w.values())
            if total > 0:
                means = sum(phases[p] * (v / total) for p, v in w.items())
        if means is None:
            means = np.zeros(len(self.COLUMNS))
        return {m: float(means[self.COLUMNS.index(c)]) for m, c in _OUTCOME_COLUMNS.items()}

    def has(self, strategy, site_kind, trap_site):
        """Whether the table has a row for this key."""
        return (strategy, site_kind, trap_site) in self._means

    def trapped_placements(self, strategy, site_kind, trap_site):
        """How many emulated trapped calls stand behind a row (0 if none)."""
        return self._n.get((strategy, site_kind, trap_site), 0)


def load_outcomes(scenario, entry="v5.3"):
    """Run/load the emulator's outcome table (cached by code version there)."""
    from workbench.emulate.explore import load_outcome_table  # start-up: Unicorn, only when a table is read
    from workbench.emulate.patching_cpu import load_patching_cpu_table  # start-up: as above
    check_scenario(scenario)
    return PerCallOutcomes(load_outcome_table(scenario, entry), scenario, entry,
                           load_patching_cpu_table(scenario, entry))


# -- the timeline shared by the closed form and the Monte Carlo ---------------

@dataclass
class _Group:
    kind: str
    trap_site: str
    handler_ns: float
    sites: Sites
    outcome: dict
    share: float = 1.0  # rates are the workload's times this (_caller_share)
    late: dict = None  # spin, batched: outcomes of a re-trap (after sync 2, while first bytes are written)
    functions: tuple = ()  # live-patched kind: the stage's own functions (Stage.functions)


@dataclass
class _Stage:
    what: str       # trampoline | publish | batched | per_site
    sites: int
    groups: list
    d_write: float = 0.0  # write time inside every armed window of the stage
    patcher: list = field(default_factory=list)  # spin: the patching CPU's interrupt-context groups
    batch: tuple = None  # batch_max: (index, first, end, the step's kinds) in the write order (_batch_order)


def _caller_share(cfg, summary=None, irq=None):
    """Per site kind, the CPUs' summed call rate as a multiple of N per-CPU rates.

    The CPU running ``text_poke_bp`` is not running its process-context
    callers while it patches; only interrupts reach traced functions on it.
    So a kind's rate over the N CPUs is ``(N - 1) L + L_irq`` (``L_irq``:
    the kind's functions called in ``interrupt`` context, from the
    scenario, :meth:`workbench.emulate.scenario.Scenario.context_of`), i.e.
    N CPUs at ``L ((N - 1) + L_irq / L) / N``. Exact for the Poisson count;
    for ``spin`` (a binomial over CPUs) it spreads the patching CPU's rate
    over all N, an approximation documented in docs/RACE.md.
    """
    if cfg.patcher_calls or cfg.strategy == "spin":
        # spin counts the N - 1 other CPUs and the patching CPU apart (_spin_callers)
        return dict.fromkeys(SITE_KINDS, 1.0)
    n = cfg.cpus
    summary = site_summary(cfg.workload) if summary is None else summary
    irq = _irq_rates(cfg) if irq is None else irq
    return {kind: ((n - 1) + (irq[kind] / summary[kind].total if summary[kind].total > 0 else 0.0)) / n
            for kind in SITE_KINDS}


def _irq_rates(cfg):
    """Per site kind, the per-CPU rate (calls/s) of its functions called in interrupt context."""
    return dict(_irq_rates_of(cfg.scenario, cfg.workload.hot))


@lru_cache(maxsize=256)
def _irq_rates_of(scenario, hot):
    sc = load_scenario(scenario)
    return tuple((kind, sum(r for name, r in hot if (name in LIVEPATCHED) == (kind == "livepatched")
                            and sc.context_of(name) == "interrupt")) for kind in SITE_KINDS)


def _spin_callers(cfg):
    """CPUs that run the workload while the patch is in flight, under spin.

    A CPU trapping under spin blocks, so the CPUs are counted, not their
    rates scaled: N - 1 callers at full rate, and the patching CPU apart,
    reached only by interrupt-context calls (:attr:`_Stage.patcher`), where
    a trap that leaves a sync still to come deadlocks the patch.
    """
    return cfg.cpus if cfg.patcher_calls else cfg.cpus - 1


def _scaled(sites, f):
    """*sites* with every rate times *f*."""
    return Sites(sites.count, sites.top * f, sites.rest_total * f, sites.rest_sumsq * f * f)


def trap_phase_weights(cfg, sites, rate_ns):
    """Probability that a trapped call trapped in each phase of a window of *sites* sites.

    Phases are named by the step that opens them. With mean rounds R and
    write cost w, averaged over the batch's sites (site i's int3 done at
    i w, its first byte at 2Kw + R1 + R2 + i w): ``int3`` lasts
    (K - 1) w / 2 + R (the other int3 writes, then sync 1), ``sync1`` K w
    (the tails), ``tail`` R (sync 2), ``sync2`` (K + 1) w / 2 (the first
    bytes up to this site's). A call of a non-blocking strategy traps
    uniformly in time: weights proportional to the durations. Under
    ``spin`` a CPU traps at its first call into the window, at rate
    *rate_ns* per ns: weight ``e^(-L t_start) - e^(-L t_end)``.
    """
    t = cfg.timing
    mu = t.round_moments(cfg.cpus)[0]
    k, w = sites, t.write_ns
    dur = {"int3": (k - 1) * w / 2 + mu, "sync1": k * w, "tail": mu, "sync2": (k + 1) * w / 2}
    if cfg.strategy != "spin" or rate_ns <= 0:
        return dur
    out, start = {}, 0.0
    for p, d in dur.items():
        out[p] = math.exp(-rate_ns * start) - math.exp(-rate_ns * (start + d))
        start += d
    return out


def _stage_view(cfg, functions):
    """Site summary (rates scaled by the caller share), share and interrupt rates of one stage.

    The live-patched kind holds only *functions* (the stage's own), or all
    of :data:`LIVEPATCHED` when *functions* names them all or none.
    """
    base, irq = site_summary(cfg.workload), _irq_rates(cfg)
    fns = tuple(f for f in LIVEPATCHED if f in functions)
    if fns and len(fns) < len(LIVEPATCHED):
        hot, sc = dict(cfg.workload.hot), load_scenario(cfg.scenario)
        base = {**base, "livepatched": Sites(len(fns), np.sort(np.array([hot[f] for f in fns], float))[::-1],
                                             0.0, 0.0)}
        irq = {**irq, "livepatched": sum(hot[f] for f in fns if sc.context_of(f) == "interrupt")}
    share = _caller_share(cfg, base, irq)
    return {k: _scaled(v, share[k]) for k, v in base.items()}, share, irq


def patch_timeline(cfg, outcomes):
    """The ordered windows of *cfg*'s patch: one stage per write/sync step.

    Each stage carries its window length (ns), its site groups (rates in
    calls/s per CPU) and the per-trapped-call outcomes from *outcomes*
    (a :class:`PerCallOutcomes`, or ``None`` for all zeros). Shared by the
    closed form and the Monte Carlo (:func:`draw_chunk`).
    """
    t = cfg.timing
    weights = {}

    def look(kind, site, patching=False):
        if outcomes is None:
            return dict.fromkeys(_OUTCOME_COLUMNS, 0.0)
        table = outcomes.on_patching_cpu() if patching else outcomes
        return table.per_call(cfg.strategy, kind, site, weights.get("now"))
    stages = []
    for st in PLANS[cfg.scenario]:
        summary, share, irq = _stage_view(cfg, st.functions)
        if st.target in ("ftrace_call", "ftrace_regs_call"):
            if not cfg.trampolines:
                continue
            # everything routed through the trampoline shares its one window
            weights["now"] = trap_phase_weights(cfg, 1, NS * sum(summary[k].total for k in st.kinds))
            groups = [_Group(k, st.target, t.handler_ns,
                             Sites(summary[k].count, np.zeros(0), summary[k].total, 0.0),
                             look(k, st.target), share[k]) for k in st.kinds]
            # one site: tail write + first-byte write inside the window
            stages.append(_Stage("trampoline", 1, groups, 2 * t.write_ns,
                                 _patcher_groups(cfg, st.kinds, st.target, 1, look, weights, irq)))
        elif st.target == "publish":
            if cfg.trampolines:
                stages.append(_Stage("publish", 0, []))
        else:
            k = sum(summary[kind].count for kind in st.kinds)
            if k == 0:  # nothing to rewrite: ftrace runs no protocol
                continue
            if cfg.protocol == "per_site":
                per_site = NS * sum(summary[kind].total for kind in st.kinds) / k
                weights["now"] = trap_phase_weights(cfg, 1, per_site)
                groups = [_Group(kind, "fentry", t.handler_ns, summary[kind], look(kind, "fentry"),
                                 share[kind], functions=st.functions) for kind in st.kinds]
                stages.append(_Stage("per_site", k, groups, 2 * t.write_ns,
                                     _patcher_groups(cfg, st.kinds, "fentry", 1, look, weights, irq)))
            elif cfg.batch_max is not None and k > cfg.batch_max:
                stages.extend(_batches(cfg, st.kinds, share, look, weights, st.functions))
            else:
                h = t.handler_batch_ns if k > 1 else t.handler_ns  # no search for one entry
                weights["now"] = trap_phase_weights(cfg, k, NS * sum(summary[kind].total for kind in st.kinds))
                groups = [_Group(kind, "fentry", h,
                                 Sites(summary[kind].count, np.zeros(0), summary[kind].total, 0.0),
                                 look(kind, "fentry"), share[kind], functions=st.functions) for kind in st.kinds]
                if cfg.strategy == "spin":
                    weights["now"] = {"sync2": 1.0}
                    for g in groups:
                        g.late = look(g.kind, "fentry")
                # site i: int3 done at i*w; R1; K tails; R2; first bytes in
                # the same order, site i's done at 2Kw + R1 + R2 + i*w
                stages.append(_Stage("batched", k, groups, 2 * k * t.write_ns,
                                     _patcher_groups(cfg, st.kinds, "fentry", k, look, weights, irq)))
    return stages


def _batches(cfg, kinds, share, look, weights, functions=()):
    """The batched stages of one sites step cut into batches of ``cfg.batch_max`` (v5.6+).

    The sites are cut in write (address) order, the model's fixed
    pseudo-random order of the workload's rates (:func:`_batch_order`), so
    each batch carries the rates of its own sites: the Zipf-tail's busiest
    and the named functions fall into particular batches. Each batch is a
    full protocol run (its three rounds, its ``3 b`` writes) whose window
    covers only its ``b`` sites: ``W_j = 2 b_j w + R1 + R2``. The patching
    CPU's interrupt-context calls (spin) reach only the batch holding the
    interrupt function's site.
    """
    t = cfg.timing
    rates, labels, names = _batch_order(cfg.workload, tuple(kinds), tuple(functions))
    irq_names = _irq_names(cfg.scenario, cfg.workload.hot)
    bmax, k, out = cfg.batch_max, len(rates), []
    for j, lo in enumerate(range(0, k, bmax)):
        hi = min(lo + bmax, k)
        b = hi - lo
        lab, r = labels[lo:hi], rates[lo:hi]
        here = [kind for kind in kinds if kind in lab]
        tot = {kind: float(sum(x for x, l in zip(r, lab) if l == kind)) * share[kind] for kind in here}
        h = t.handler_batch_ns if b > 1 else t.handler_ns  # no search for one entry
        weights["now"] = trap_phase_weights(cfg, b, NS * sum(tot.values()))
        groups = [_Group(kind, "fentry", h, Sites(lab.count(kind), np.zeros(0), tot[kind], 0.0),
                         look(kind, "fentry"), share[kind], functions=tuple(functions)) for kind in here]
        if cfg.strategy == "spin":
            weights["now"] = {"sync2": 1.0}
            for g in groups:
                g.late = look(g.kind, "fentry")
        irq = dict.fromkeys(kinds, 0.0)
        for x, l, name in zip(r, lab, names[lo:hi]):
            if name in irq_names:
                irq[l] += x
        out.append(_Stage("batched", b, groups, 2 * b * t.write_ns,
                          _patcher_groups(cfg, here, "fentry", b, look, weights, irq),
                          (j, lo, hi, tuple(kinds))))
    return out


@lru_cache(maxsize=256)
def _irq_names(scenario, hot):
    """The named functions of *hot* that *scenario* calls in interrupt context."""

    sc = load_scenario(scenario)
    return frozenset(name for name, _ in hot if sc.context_of(name) == "interrupt")


#: the fixed pseudo-random write order of a batch's sites (rates independent of address)
STAGGER_ORDER_SEED = 0


@lru_cache(maxsize=32)
def _batch_order(workload, kinds, functions=()):
    """The sites of a sites step in write order: per-site rates, kinds and names (None: tail).

    Sites are written in address order; the model takes the workload's
    per-site rates as independent of address, in one fixed pseudo-random
    order (:data:`STAGGER_ORDER_SEED`). Per kind: ``livepatched`` are the
    named live-patched functions, ``ordinary`` the other named ones and the
    whole Zipf tail.
    """
    rates, labels, names = [], [], []
    hot = dict(workload.hot)
    if "livepatched" in kinds:  # the step's own live-patched functions (all when none named)
        lp = [n for n in LIVEPATCHED if n in functions] or list(LIVEPATCHED)
        rates += [hot[n] for n in lp]
        labels += ["livepatched"] * len(lp)
        names += lp
    if "ordinary" in kinds:
        other = [(n, r) for n, r in workload.hot if n not in LIVEPATCHED]
        m = workload.tail_functions
        tail = []
        if m:
            z = np.arange(1, m + 1, dtype=float) ** -workload.zipf_s
            tail = (z * (workload.tail_rate / z.sum())).tolist()
        rates += [r for _, r in other] + tail
        labels += ["ordinary"] * (len(other) + len(tail))
        names += [n for n, _ in other] + [None] * len(tail)
    order = np.random.default_rng(STAGGER_ORDER_SEED).permutation(len(rates))
    return (np.asarray(rates)[order], tuple(labels[i] for i in order), tuple(names[i] for i in order))


@lru_cache(maxsize=32)
def _stagger_table(workload, kinds, write_ns, functions=()):
    """:func:`workbench.race.stagger.stagger_tables` of a batched stage's sites (:func:`_batch_order`)."""

    rates, labels, _ = _batch_order(workload, kinds, functions)
    return stagger_tables(rates, write_ns, list(labels))


@lru_cache(maxsize=8)
def _stagger_batch_tables(workload, kinds, write_ns, batch_max, functions=()):
    """:func:`workbench.race.stagger.stagger_tables` of every batch of ``batch_max`` sites, in order."""

    rates, labels, _ = _batch_order(workload, kinds, functions)
    return tuple(stagger_tables(rates[lo:lo + batch_max], write_ns, list(labels[lo:lo + batch_max]))
                 for lo in range(0, len(rates), batch_max))


def _stagger_spin(cfg, stage, window):
    """Spin in a batched stage at window(s) *window*: per-CPU traps by kind, first-trap share, wait.

    A batch of a cut sites step (``stage.batch``) is its own staggered
    window over its own sites; a CPU released by one batch calls on into
    the next batch's fresh int3s (the batches are disjoint in time).
    """

    fns = next((g.functions for g in stage.groups if g.functions), ())
    if stage.batch is None:
        tab = _stagger_table(cfg.workload, tuple(g.kind for g in stage.groups), cfg.timing.write_ns, fns)
    else:
        tab = _stagger_batch_tables(cfg.workload, stage.batch[3], cfg.timing.write_ns,
                                    cfg.batch_max, fns)[stage.batch[0]]
    r = stagger_eval(tab, window)
    traps = np.asarray(r["traps"], float)
    first = np.where(traps > 0, np.asarray(r["first"], float) / np.where(traps > 0, traps, 1.0), 1.0)
    return r["by_kind"], first, np.asarray(r["wait_ns"], float)


def _patcher_groups(cfg, kinds, trap_site, sites, look, weights, irq=None):
    """Spin only: the patching CPU's interrupt-context calls into a window (one group per kind).

    Each is one CPU whose first call at the kind's interrupt rate traps,
    with the outcomes the emulator measured for a call trapped on the
    patching CPU itself (the patch frozen in its phase: under spin a
    deadlock in every phase, the first-byte phase included). Per site, the window is the interrupt function's own site.
    *irq* (kind -> rate): the interrupt-context rates armed in this window
    (default: the kind's whole, :func:`_irq_rates`).
    """
    if cfg.strategy != "spin" or cfg.patcher_calls:
        return []
    out = []
    if irq is None:
        irq = _irq_rates(cfg)
    for kind in kinds:
        if irq[kind] > 0:
            weights["now"] = trap_phase_weights(cfg, sites, NS * irq[kind])
            out.append(_Group(kind, trap_site, cfg.timing.handler_ns if sites == 1 else cfg.timing.handler_batch_ns,
                              Sites(1, np.zeros(0), irq[kind], 0.0), look(kind, trap_site, patching=True)))
    return out


def _ipis(cfg, stages):
    """Function-call IPI rounds the patch sends: none with one CPU online."""
    if cfg.cpus == 1:
        return 0
    if cfg.protocol == "stop_machine":
        return 1  # the stop_machine rendezvous
    return sum(1 if s.what == "publish" else 3 * (s.sites if s.what == "per_site" else 1) for s in stages)


def _count(res, g, k, rng):
    """Add *k* trapped calls of group *g*: the count, its outcomes, handler time."""
    res["trapped"] += k
    for m, v in g.outcome.items():
        if v > 0:
            whole, frac = math.floor(v), v - math.floor(v)
            res[m] += whole * k + (rng.binomial(k, frac) if frac > 0 else 0)
    res["stall_ns"] += k * g.handler_ns


def _closed(cfg, outcomes):
    """Closed-form expectations of every metric; see closed_form()."""
    t, n = cfg.timing, cfg.cpus
    mu, var = t.round_moments(n)
    stages = patch_timeline(cfg, outcomes)
    out = dict.fromkeys(METRICS, 0.0)
    out["ipis"] = float(_ipis(cfg, stages))
    sites = sum(s.sites for s in stages if s.what in ("batched", "per_site"))
    if cfg.protocol == "stop_machine":
        writes = sum(s.sites for s in stages)  # one whole-instruction write each
        sm_mean, _ = t.stop_machine_moments(n)
        out["patch_ns"] = sm_mean + writes * t.write_ns + sites * t.prepare_ns
        out["stall_ns"] = n * out["patch_ns"]
        return out
    acc = None  # site-weighted window over the batches of one sites step
    for s in stages:
        if s.what == "publish":
            out["patch_ns"] += mu
            continue
        per = s.sites if s.what == "per_site" else 1
        # a protocol run: 3 writes per site and 3 rounds; its window holds
        # 2 of the writes and the first 2 rounds
        out["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + 3 * per * mu
        ew = s.d_write + 2 * mu
        if s.batch is not None:  # batches of one sites step: their site-weighted mean window
            acc = [0.0, 0] if s.batch[0] == 0 else acc
            acc[0], acc[1] = acc[0] + s.sites * ew, acc[1] + s.sites
            out["window_ns"] = acc[0] / acc[1]
        elif s.what in ("batched", "per_site"):
            out["window_ns"] = ew
        # spin: a trapped CPU makes no further calls until the window closes
        if cfg.strategy == "spin" and s.what == "batched":
            # staggered windows: re-traps after each release (workbench.race.stagger)
            callers = _spin_callers(cfg)
            W, wts = window_nodes(t, n, s.d_write)
            by_kind, first, wait = _stagger_spin(cfg, s, W)
            for g in s.groups:
                per = np.asarray(by_kind[g.kind], float)
                trapped = callers * float(fdot(wts, per))
                out["trapped"] += trapped
                for m, v in g.outcome.items():
                    out[m] += callers * float(fdot(wts, per * (first * v + (1 - first) * g.late[m])))
                out["stall_ns"] += trapped * g.handler_ns
            out["stall_ns"] += callers * float(fdot(wts, wait))
            for g in s.patcher:
                p = spin_shared(t, n, s.d_write, (g.sites.total,), 0.0)[0][0]
                out["trapped"] += p
                for m, v in g.outcome.items():
                    out[m] += p * v
                out["stall_ns"] += p * g.handler_ns
            continue
        spin = spin_expect(cfg, s) if cfg.strategy == "spin" else None
        callers = _spin_callers(cfg) if spin is not None else n
        for i, g in enumerate(s.groups):
            trapped = callers * (spin[0][i] if spin is not None else NS * g.sites.total * ew)
            out["trapped"] += trapped
            for m, v in g.outcome.items():
                out[m] += trapped * v
            out["stall_ns"] += trapped * g.handler_ns
        if spin is not None:
            out["stall_ns"] += callers * spin[1]
        for g in s.patcher:  # the patching CPU: its first interrupt in the window traps
            p = spin_shared(t, n, s.d_write, (g.sites.total,), 0.0)[0][0]
            out["trapped"] += p
            for m, v in g.outcome.items():
                out[m] += p * v
            out["stall_ns"] += p * g.handler_ns
    return out


def closed_form(config, outcomes):
    """Expected value of every metric in :data:`METRICS` for *config*.

    ``trapped = N * sum_groups L_g E[W_g]``, except for spin, where a CPU
    traps at most once per window: ``N E[1 - e^(-L W)]`` per shared window
    (split over its groups by rate) and per per-site window; each outcome
    adds the trapped count times its per-call mean; ``stall_ns`` adds the
    handler cost per trapped call, for spin each trapped CPU's wait
    (``N E[W - (1 - e^(-L W)) / L]`` per window), and ``N * E[patch]`` for
    stop_machine. Window moments come from :meth:`Timing.round_moments`;
    spin's expectations over W from a quadrature over its two rounds.
    """
    return _closed(config, outcomes)


def draw_chunk(cfg, stages, rng, size):
    """Per-trial values of every metric for *size* trials: metric -> array of *size*.

    Units are those of :data:`METRICS` (counts per patch, times in ns);
    *stages* is :func:`patch_timeline`'s list, *rng* a numpy Generator.
    """
    t, n = cfg.timing, cfg.cpus
    res = {m: np.zeros(size) for m in METRICS}
    res["ipis"][:] = _ipis(cfg, stages)
    if cfg.protocol == "stop_machine":
        sites = sum(s.sites for s in stages if s.what in ("batched", "per_site"))
        writes = sum(s.sites for s in stages)
        patch = (t.stop_machine_ns + t.draw_rounds(rng, n, size)
                 + writes * t.write_ns + sites * t.prepare_ns)
        res["patch_ns"], res["stall_ns"] = patch, n * patch
        return res
    mu, var = t.round_moments(n)
    disp = cfg.workload.dispersion
    spin = cfg.strategy == "spin"
    acc = None  # site-weighted window over the batches of one sites step
    for s in stages:
        if s.what == "publish":
            res["patch_ns"] += t.draw_round_sum(rng, n, 1, size)
            continue
        exposures = []  # (group, X = sum of rate * window)
        if s.what in ("trampoline", "batched"):
            # one protocol run: three rounds; the window is the write time
            # plus the first two (it closes at the first-byte write, before R3)
            rounds = t.draw_rounds(rng, n, (size, 3))
            w = s.d_write + rounds[:, 0] + rounds[:, 1]
            res["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + rounds.sum(axis=1)
            if s.batch is not None:  # batches of one sites step: their site-weighted mean window
                acc = [np.zeros(size), 0] if s.batch[0] == 0 else acc
                acc[0], acc[1] = acc[0] + s.sites * w, acc[1] + s.sites
                res["window_ns"] = acc[0] / acc[1]
            elif s.what == "batched":
                res["window_ns"] = w
            if spin and s.what == "batched":
                # staggered windows (workbench.race.stagger): the trial's conditional
                # means, Poisson counts; each trap a first trap with the trial's share
                callers = _spin_callers(cfg)
                by_kind, first, wait = _stagger_spin(cfg, s, w)
                for g in s.groups:
                    k = rng.poisson(callers * np.asarray(by_kind[g.kind], float))
                    kf = rng.binomial(k, np.clip(first, 0.0, 1.0))
                    _count(res, g, kf, rng)
                    _count(res, _Group(g.kind, g.trap_site, g.handler_ns, g.sites, g.late), k - kf, rng)
                res["stall_ns"] += callers * wait
                _draw_patcher(res, s, w, rng, size)
                continue
            if spin:
                spin_draw_shared(res, s.groups, w, _spin_callers(cfg), disp, rng, size, _count)
                _draw_patcher(res, s, w, rng, size)
                continue
            exposures = [(g, g.sites.total * w) for g in s.groups]
        else:  # per_site: every site its own three rounds, its window the first two
            ew = s.d_write + 2 * mu
            all_rounds, window_rounds = np.zeros(size), np.zeros(size)
            for g in s.groups:
                x = np.zeros(size)
                gain = (rng.gamma(1 / disp, disp, size)
                        if spin and disp > 0 and g.sites.total > 0 else None)
                top = g.sites.top
                if top.size:
                    r = t.draw_rounds(rng, n, (size, top.size, 3))
                    r12 = r[:, :, 0] + r[:, :, 1]
                    all_rounds += r.sum(axis=(1, 2))
                    window_rounds += r12.sum(axis=1)
                    w = s.d_write + r12
                    if spin:  # each CPU traps at most once in each site's window
                        xs = w * (top * NS) * (1.0 if gain is None else gain[:, None])
                        k = rng.binomial(_spin_callers(cfg), -np.expm1(-xs))
                        _count(res, g, k.sum(axis=1), rng)
                        res["stall_ns"] += spin_wait(rng, k, w, xs)
                    else:
                        x += fdot(w, top)
                rest = g.sites.count - top.size
                # the rest's window rounds and third rounds, summed apart so
                # window_ns and patch_ns share them (the rate-weighted
                # exposure below is drawn from its own exact moments)
                r12_rest = t.draw_round_sum(rng, n, 2 * rest, size)
                window_rounds += r12_rest
                all_rounds += r12_rest + t.draw_round_sum(rng, n, rest, size)
                if spin:
                    # the rest's traps per CPU from their exact mean and
                    # variance (rest_sums); each waits the rest's mean wait
                    _, _, (rest_p, rest_b, rest_v) = spin_per_site(t, n, s.d_write, cfg.workload, g.kind,
                                                                   g.share, g.functions)
                    if rest_p > 0:
                        lam = _spin_callers(cfg) * gamma_matched(rng, rest_p, rest_v, size)
                        k = rng.poisson(lam if gain is None else lam * gain)
                        _count(res, g, k, rng)
                        res["stall_ns"] += k * (rest_b / rest_p)
                    continue
                if g.sites.rest_total > 0:
                    x += gamma_matched(rng, g.sites.rest_total * ew, g.sites.rest_sumsq * 2 * var, size)
                exposures.append((g, x))
            res["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + all_rounds
            res["window_ns"] = s.d_write + window_rounds / max(s.sites, 1)
            if s.patcher:  # the interrupt function's own site window (its own two rounds)
                _draw_patcher(res, s, s.d_write + t.draw_rounds(rng, n, (size, 2)).sum(axis=1), rng, size)
        for g, x in exposures:
            if g.sites.total <= 0:
                continue
            lam = n * NS * x
            if disp > 0:
                lam = lam * rng.gamma(1 / disp, disp, size)
            _count(res, g, rng.poisson(lam), rng)
    return res


def _draw_patcher(res, stage, w, rng, size):
    """Spin: whether the patching CPU's first interrupt-context call fell in window *w* (per trial)."""
    for g in stage.patcher:
        k = (rng.random(size) < -np.expm1(-NS * g.sites.total * w)).astype(np.int64)
        _count(res, g, k, rng)


def _config_columns(cfg, outcomes, trials, seed, stream):
    w, t = cfg.workload, cfg.timing
    stages = patch_timeline(cfg, None)
    row = {"scenario": cfg.scenario, "entry": outcomes.entry, "strategy": cfg.strategy,
           "protocol": cfg.protocol, "batch_max": cfg.batch_max, "cpus": cfg.cpus,
           "n_sites": sum(s.sites for s in stages if s.what in ("batched", "per_site")),
           "hot_rates": ",".join(f"{k}={v:g}" for k, v in w.hot),
           "tail_functions": w.tail_functions, "tail_rate": w.tail_rate, "zipf_s": w.zipf_s,
           "dispersion": w.dispersion, "trampolines": cfg.trampolines}
    row.update({f.name: getattr(t, f.name) for f in fields(Timing)})
    row.update({"ipi_round_ns": t.round_moments(cfg.cpus)[0], "horizon_ns": cfg.horizon_ns,
                "trials": trials, "seed": seed, "stream": stream})
    return row


def simulate(config, outcomes, trials=10_000, seed=0, *, stream=0, level=0.95):
    """Monte Carlo of *config*: a one-row tidy frame beside the closed form.

    Columns: the configuration, then per metric ``<m>_mean``, ``<m>_se``
    (standard error of the mean), ``<m>_lo``/``<m>_hi`` (normal interval of
    the mean at *level*, default 95%) and ``<m>_cf`` (closed form), and
    ``outcome_note`` naming (strategy, site kind, trap site) keys the outcome
    table lacks (counted as 0). Random numbers come from
    ``SeedSequence(seed, spawn_key=(stream,))``: same inputs, same numbers.
    *outcomes* None loads the emulator's table (:func:`load_outcomes`).
    Raises :class:`ConfigError` for bad trials, seed, level, or an outcome
    table of another scenario.
    """
    trials = int(check_range("trials", trials, 2, 10**8, integer=True))
    seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
    stream = int(check_range("stream", stream, 0, 2**63 - 1, integer=True))
    level = check_range("level", level, 0.5, 0.999999)
    if outcomes is None:
        outcomes = load_outcomes(config.scenario)
    if outcomes.scenario != config.scenario:
        raise ConfigError(f"outcomes: table is for scenario {outcomes.scenario!r}, "
                          f"config is {config.scenario!r}")
    stages = patch_timeline(config, outcomes)
    cf = _closed(config, outcomes)
    missing = sorted({(config.strategy, g.kind, g.trap_site) for s in stages for g in s.groups
                      if g.sites.total > 0 and config.protocol != "stop_machine"
                      and not outcomes.has(config.strategy, g.kind, g.trap_site)})
    note = "; ".join(f"no emulator rows for {'/'.join(k)}: counted as 0" for k in missing)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
    count, mean, m2 = 0, dict.fromkeys(METRICS, 0.0), dict.fromkeys(METRICS, 0.0)
    lo = dict.fromkeys(METRICS, math.inf)
    hi = dict.fromkeys(METRICS, -math.inf)
    for start in range(0, trials, _CHUNK):
        size = min(_CHUNK, trials - start)
        chunk = draw_chunk(config, stages, rng, size)
        for m in METRICS:  # Chan et al.'s pairwise update of mean and M2
            lo[m], hi[m] = min(lo[m], float(chunk[m].min())), max(hi[m], float(chunk[m].max()))
            cm = float(chunk[m].mean())
            cm2 = float(((chunk[m] - cm) ** 2).sum())
            delta, total = cm - mean[m], count + size
            mean[m] += delta * size / total
            m2[m] += cm2 + delta * delta * count * size / total
        count += size
    z = _normal_quantile(0.5 + level / 2)
    row = _config_columns(config, outcomes, trials, seed, stream)
    for m in METRICS:
        if lo[m] == hi[m]:  # a constant (IPI count, no traps): exact, no rounding noise
            mean[m], m2[m] = lo[m], 0.0
        se = math.sqrt(m2[m] / (trials - 1) / trials)
        row.update({f"{m}_mean": mean[m], f"{m}_se": se, f"{m}_lo": mean[m] - z * se,
                    f"{m}_hi": mean[m] + z * se, f"{m}_cf": cf[m]})
    row["outcome_note"] = note
    return pd.DataFrame([row])


def config_stream(config) -> int:
    """The 63-bit random stream of a :class:`RaceConfig`: a hash of its full ``repr`` (floats exact)."""
    return int.from_bytes(hashlib.sha256(repr(config).encode()).digest()[:8], "little") >> 1


def simulate_many(configs, outcomes, trials=10_000, seed=0, *, level=0.95):
    """:func:`simulate` each config (stream = :func:`config_stream` of it); concatenated frame.

    *outcomes* is one :class:`PerCallOutcomes`, a mapping scenario -> it, or
    None (load each scenario's emulator table once). Each point's stream
    depends only on *seed* and the configuration itself, not on its
    position in *configs*: a configuration gives the same numbers alone or
    in any list.
    """
    frames, loaded = [], {}
    for cfg in configs:
        if outcomes is None:
            if cfg.scenario not in loaded:
                loaded[cfg.scenario] = load_outcomes(cfg.scenario)
            table = loaded[cfg.scenario]
        else:
            table = outcomes[cfg.scenario] if isinstance(outcomes, dict) else outcomes
        frames.append(simulate(cfg, table, trials, seed, stream=config_stream(cfg), level=level))
    return pd.concat(frames, ignore_index=True)


def _normal_quantile(p):
    """Standard normal quantile by bisection on erf (no scipy needed)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def bristot_comparison(timing=None, anchor=BRISTOT):
    """The model beside Bristot's measurement (closed form, no trampolines).

    56 sites on 24 CPUs patched per site and batched. IPI rounds are
    structural; update times match by construction (the timing defaults are
    derived from them); the int3-hit ratio is a prediction of the exposure
    model: batched windows overlap, per-site windows tile the update, so the
    ratio is ``E[W_batched] / E[W_per_site] = (Kw + R) / (w + R)``,
    independent of call rates. With ``prepare_ns`` 0 each window is two
    thirds of its protocol run (2 of 3 writes per site, 2 of 3 rounds), so
    the ratio is ``K T_batched / T_per_site`` = 56 x 1.4 / 57 = 1.375.
    """
    timing = timing or Timing()
    hot = {n: 1000.0 for n in LIVEPATCHED}
    work = Workload(hot=hot, tail_functions=anchor.sites - len(hot), tail_rate=1e4)
    runs = {p: _closed(RaceConfig("seed", "skip", p, anchor.cpus, work, timing, trampolines=False), None)
            for p in ("per_site", "batched")}
    rows = [
        ("IPI rounds per update", runs["per_site"]["ipis"], runs["batched"]["ipis"],
         anchor.ipis_per_site, anchor.ipis_batched, "structural"),
        ("update time (ms)", runs["per_site"]["patch_ns"] / 1e6, runs["batched"]["patch_ns"] / 1e6,
         anchor.update_per_site_ns / 1e6, anchor.update_batched_ns / 1e6, "calibrated"),
        ("int3 handler (ns)", timing.handler_ns, timing.handler_batch_ns,
         anchor.handler_ns, anchor.handler_batch_ns, "input"),
        ("int3 hits per update (relative)", 1.0, runs["batched"]["trapped"] / runs["per_site"]["trapped"],
         1.0, anchor.hits_ratio, "prediction"),
    ]
    frame = pd.DataFrame(rows, columns=["quantity", "model_per_site", "model_batched",
                                        "measured_per_site", "measured_batched", "kind"])
    frame.insert(3, "model_ratio", frame.model_batched / frame.model_per_site)
    frame.insert(6, "measured_ratio", frame.measured_batched / frame.measured_per_site)
    return frame
