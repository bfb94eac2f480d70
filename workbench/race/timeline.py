"""The patch timeline: one stage per breakpoint batch or stop, with its windows, site groups and outcomes.

Shared by the closed form and the Monte Carlo (``workbench.race.simulator``);
the model is docs/RACE.md "The patch timeline", "The patching CPU" and "spin".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from workbench.base.units import NS
from workbench.emulate.scenario import load_scenario
from workbench.race.outcomes import OUTCOME_METRICS
from workbench.race.plan import PLANS
from workbench.race.stagger import stagger_eval, stagger_tables
from workbench.race.workload import LIVEPATCHED, SITE_KINDS, Sites, Workload, site_summary

if TYPE_CHECKING:  # the simulator imports this module
    from workbench.race.outcomes import PerCallOutcomes
    from workbench.race.simulator import RaceConfig

__all__ = ["STAGGER_ORDER_SEED", "SiteGroup", "TimelineStage", "patch_timeline", "spin_callers", "stagger_spin",
           "trap_phase_weights"]


@dataclass
class SiteGroup:
    """Sites of one kind trapping at one trap site in a stage: their rates, handler time and per-call outcomes."""

    kind: str
    trap_site: str
    handler_ns: float
    sites: Sites
    outcome: dict
    share: float = 1.0  # rates are the workload's times this (_caller_share)
    late: dict = None  # spin, batched: outcomes of a re-trap (after sync 2, while first bytes are written)
    functions: tuple = ()  # live-patched kind: the stage's own functions (Stage.functions)


@dataclass
class TimelineStage:
    """One step of the patch timeline: a trampoline call's batch, the publish sync, a batch of sites or a
    step patched site by site, with its armed windows' write time and its site groups."""

    what: str       # trampoline | publish | batched | per_site
    sites: int
    groups: list
    d_write: float = 0.0  # write time inside every armed window of the stage
    patcher: list = field(default_factory=list)  # spin: the patching CPU's interrupt-context groups
    batch: tuple = None  # batch_max: (index, first, end, the step's kinds) in the write order (_batch_order)


def _caller_share(cfg: RaceConfig, summary: dict[str, Sites] | None = None,
                  irq: dict[str, float] | None = None) -> dict[str, float]:
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
    if cfg.patcher_calls or cfg.blocks:
        # spin counts the N - 1 other CPUs and the patching CPU apart (spin_callers)
        return dict.fromkeys(SITE_KINDS, 1.0)
    n = cfg.cpus
    summary = site_summary(cfg.workload) if summary is None else summary
    irq = _irq_rates(cfg) if irq is None else irq
    return {kind: ((n - 1) + (irq[kind] / summary[kind].total if summary[kind].total > 0 else 0.0)) / n
            for kind in SITE_KINDS}


def _irq_rates(cfg: RaceConfig) -> dict[str, float]:
    """Per site kind, the per-CPU rate (calls/s) of its functions called in interrupt context."""
    return dict(_irq_rates_of(cfg.scenario, cfg.workload.hot))


@lru_cache(maxsize=256)
def _irq_rates_of(scenario: str, hot: tuple[tuple[str, float], ...]) -> dict[str, float]:
    sc = load_scenario(scenario)
    return tuple((kind, sum(r for name, r in hot if (name in LIVEPATCHED) == (kind == "livepatched")
                            and sc.context_of(name) == "interrupt")) for kind in SITE_KINDS)


def spin_callers(cfg: RaceConfig) -> int:
    """CPUs that run the workload while the patch is in flight, under spin.

    A CPU trapping under spin blocks, so the CPUs are counted, not their
    rates scaled: N - 1 callers at full rate, and the patching CPU apart,
    reached only by interrupt-context calls (:attr:`TimelineStage.patcher`), where
    a trap that leaves a sync still to come deadlocks the patch.
    """
    return cfg.cpus if cfg.patcher_calls else cfg.cpus - 1


def _scaled(sites: Sites, f: float) -> Sites:
    """*sites* with every rate times *f*."""
    return Sites(sites.count, sites.top * f, sites.rest_total * f, sites.rest_sumsq * f * f)


def trap_phase_weights(cfg: RaceConfig, sites: int, rate_ns: float) -> dict[str, float]:
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
    if not cfg.blocks or rate_ns <= 0:
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


def patch_timeline(cfg: RaceConfig, outcomes: PerCallOutcomes | None) -> list[TimelineStage]:
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
            return dict.fromkeys(OUTCOME_METRICS, 0.0)
        table = outcomes.on_patching_cpu() if patching else outcomes
        return table.per_call(cfg.strategy, kind, site, weights.get("now"))
    stages = []
    for st in PLANS[(cfg.scenario, cfg.arch)]:
        summary, share, irq = _stage_view(cfg, st.functions)
        if st.target in ("ftrace_call", "ftrace_regs_call"):
            if not cfg.trampolines:
                continue
            # everything routed through the trampoline shares its one window
            weights["now"] = trap_phase_weights(cfg, 1, NS * sum(summary[k].total for k in st.kinds))
            groups = [SiteGroup(k, st.target, t.handler_ns,
                             Sites(summary[k].count, np.zeros(0), summary[k].total, 0.0),
                             look(k, st.target), share[k]) for k in st.kinds]
            # one site: tail write + first-byte write inside the window
            stages.append(TimelineStage("trampoline", 1, groups, 2 * t.write_ns,
                                 _patcher_groups(cfg, st.kinds, st.target, 1, look, weights, irq)))
        elif st.target == "publish":
            if cfg.trampolines:
                stages.append(TimelineStage("publish", 0, []))
        else:
            k = sum(summary[kind].count for kind in st.kinds)
            if k == 0:  # nothing to rewrite: ftrace pokes nothing
                continue
            if cfg.batching == "per_site":
                per_site = NS * sum(summary[kind].total for kind in st.kinds) / k
                weights["now"] = trap_phase_weights(cfg, 1, per_site)
                groups = [SiteGroup(kind, "fentry", t.handler_ns, summary[kind], look(kind, "fentry"),
                                 share[kind], functions=st.functions) for kind in st.kinds]
                stages.append(TimelineStage("per_site", k, groups, 2 * t.write_ns,
                                     _patcher_groups(cfg, st.kinds, "fentry", 1, look, weights, irq)))
            elif cfg.batch_max is not None and k > cfg.batch_max:
                stages.extend(_batches(cfg, st.kinds, share, look, weights, st.functions))
            else:
                h = t.handler_batch_ns if k > 1 else t.handler_ns  # no search for one entry
                weights["now"] = trap_phase_weights(cfg, k, NS * sum(summary[kind].total for kind in st.kinds))
                groups = [SiteGroup(kind, "fentry", h,
                                 Sites(summary[kind].count, np.zeros(0), summary[kind].total, 0.0),
                                 look(kind, "fentry"), share[kind], functions=st.functions) for kind in st.kinds]
                if cfg.blocks:
                    weights["now"] = {"sync2": 1.0}
                    for g in groups:
                        g.late = look(g.kind, "fentry")
                # site i: int3 done at i*w; R1; K tails; R2; first bytes in
                # the same order, site i's done at 2Kw + R1 + R2 + i*w
                stages.append(TimelineStage("batched", k, groups, 2 * k * t.write_ns,
                                     _patcher_groups(cfg, st.kinds, "fentry", k, look, weights, irq)))
    return stages


def _batches(cfg, kinds, share, look, weights, functions=()):
    """The batched stages of one sites step cut into batches of ``cfg.batch_max`` (v5.6+).

    The sites are cut in write (address) order, the model's fixed
    pseudo-random order of the workload's rates (:func:`_batch_order`), so
    each batch carries the rates of its own sites: the Zipf-tail's busiest
    and the named functions fall into particular batches. Each batch is a
    full breakpoint batch (its three rounds, its ``3 b`` writes) whose window
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
        tot = {kind: float(sum(x for x, l in zip(r, lab, strict=True) if l == kind)) * share[kind] for kind in here}
        h = t.handler_batch_ns if b > 1 else t.handler_ns  # no search for one entry
        weights["now"] = trap_phase_weights(cfg, b, NS * sum(tot.values()))
        groups = [SiteGroup(kind, "fentry", h, Sites(lab.count(kind), np.zeros(0), tot[kind], 0.0),
                         look(kind, "fentry"), share[kind], functions=tuple(functions)) for kind in here]
        if cfg.blocks:
            weights["now"] = {"sync2": 1.0}
            for g in groups:
                g.late = look(g.kind, "fentry")
        irq = dict.fromkeys(kinds, 0.0)
        for x, l, name in zip(r, lab, names[lo:hi], strict=True):
            if name in irq_names:
                irq[l] += x
        out.append(TimelineStage("batched", b, groups, 2 * b * t.write_ns,
                          _patcher_groups(cfg, here, "fentry", b, look, weights, irq),
                          (j, lo, hi, tuple(kinds))))
    return out


@lru_cache(maxsize=256)
def _irq_names(scenario: str, hot: tuple[tuple[str, float], ...]) -> tuple[str, ...]:
    """The named functions of *hot* that *scenario* calls in interrupt context."""

    sc = load_scenario(scenario)
    return frozenset(name for name, _ in hot if sc.context_of(name) == "interrupt")


#: the fixed pseudo-random write order of a batch's sites (rates independent of address)
STAGGER_ORDER_SEED = 0


@lru_cache(maxsize=32)
def _batch_order(workload: Workload, kinds: tuple[str, ...],
                 functions: tuple[str, ...] = ()) -> tuple[np.ndarray, tuple, tuple]:
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
def _stagger_table(workload: Workload, kinds: tuple[str, ...], write_ns: float,
                   functions: tuple[str, ...] = ()) -> dict:
    """:func:`workbench.race.stagger.stagger_tables` of a batched stage's sites (:func:`_batch_order`)."""

    rates, labels, _ = _batch_order(workload, kinds, functions)
    return stagger_tables(rates, write_ns, list(labels))


@lru_cache(maxsize=8)
def _stagger_batch_tables(workload: Workload, kinds: tuple[str, ...], write_ns: float, batch_max: int,
                          functions: tuple[str, ...] = ()) -> list[dict]:
    """:func:`workbench.race.stagger.stagger_tables` of every batch of ``batch_max`` sites, in order."""

    rates, labels, _ = _batch_order(workload, kinds, functions)
    return tuple(stagger_tables(rates[lo:lo + batch_max], write_ns, list(labels[lo:lo + batch_max]))
                 for lo in range(0, len(rates), batch_max))


def stagger_spin(cfg: RaceConfig, stage: TimelineStage, window: np.ndarray):
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
    if not cfg.blocks or cfg.patcher_calls:
        return []
    out = []
    if irq is None:
        irq = _irq_rates(cfg)
    for kind in kinds:
        if irq[kind] > 0:
            weights["now"] = trap_phase_weights(cfg, sites, NS * irq[kind])
            out.append(SiteGroup(kind, trap_site, cfg.timing.handler_ns if sites == 1 else cfg.timing.handler_batch_ns,
                              Sites(1, np.zeros(0), irq[kind], 0.0), look(kind, trap_site, patching=True)))
    return out
