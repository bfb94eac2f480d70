"""The statistical race simulator: trapped, dropped and stalled calls on N CPUs.

It answers: on N CPUs calling these functions at these rates, while ftrace
patches these sites with this protocol and these timings, how many calls
trap on an int3, what do they do under each handler strategy, and what does
it cost? Two answers side by side: a closed form (:func:`closed_form`) and a
vectorised Monte Carlo (:func:`simulate`) that checks it.

The model (documented in ``docs/RACE.md``):

* **Workload** (:class:`Workload`). Calls to each traced function arrive on
  each CPU as a Poisson process with a per-CPU rate: named hot functions plus
  a tail of M ordinary functions with a Zipf profile and a total rate. With
  ``dispersion > 0`` each window's group rate is multiplied by a Gamma(1/d, d)
  factor (gamma-Poisson: same mean, variance ``mu + d mu^2``): bursty calls.
* **Patch timeline** (:data:`PLANS`, :mod:`workbench.timing`). The ftrace
  order of DOMAIN.md section 4: trampoline calls (``ftrace_call``,
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
  (``workbench.explore.load_outcome_table``), never typed in.
* **spin blocks.** A CPU spinning on an int3 makes no further calls until
  the site's new first byte is written (the end of the window), so it traps
  at most once per window: its first call into the window's armed sites at
  ``T ~ Exp(L)`` traps if ``T < W``, with probability ``1 - e^(-L W)``, and
  it then waits ``W - T``: ``E[wait | W] = W - (1 - e^(-L W)) / L``. Sites
  sharing a window (a batch, a trampoline call) share L (their rates
  summed; the trap's site kind is drawn by rate); per-site windows are
  disjoint, so a CPU may trap once in each. On N CPUs the trapping CPUs are
  Binomial(N, 1 - e^(-L W)). Expectations over the random W are taken by
  quadrature over its two rounds (:func:`_round_nodes`); as L -> 0 they
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
rest's own rates, see :func:`_rest_sums`). Every Monte Carlo mean is unbiased for
its closed form; only higher moments of those aggregated parts are approximate.
A window's two rounds are the first two of the three rounds its protocol run
draws, so window and ``patch_ns`` stay coupled within a trial.
"""

from dataclasses import dataclass, field, fields
from functools import lru_cache
import math

import numpy as np
import pandas as pd

from .errors import ConfigError, check_choice, check_range
from .timing import BRISTOT, Timing, finite_range, gamma_matched

__all__ = [
    "STRATEGIES", "SCENARIOS", "PROTOCOLS", "SITE_KINDS", "TRAP_SITES", "METRICS",
    "LIVEPATCHED", "PLANS", "Stage", "Workload", "RaceConfig", "PerCallOutcomes",
    "closed_form", "simulate", "simulate_many", "load_outcomes", "bristot_comparison",
    "derive_plan", "EXACT_SITES",
]

STRATEGIES = ("skip", "emulate_regs_caller", "emulate_new", "emulate_old", "spin", "stop_machine")


def _scenarios():
    from .scenario import scenario_names
    return tuple(scenario_names())


#: the named scenarios (workbench/scenarios/*.toml)
SCENARIOS = _scenarios()
PROTOCOLS = ("per_site", "batched", "stop_machine")
SITE_KINDS = ("livepatched", "ordinary")
TRAP_SITES = ("fentry", "ftrace_call", "ftrace_regs_call")
#: reported metrics, in column order
METRICS = ("trapped", "violations", "dropped_tracer", "dropped_livepatch", "spurious",
           "crashes", "stall_ns", "window_ns", "patch_ns", "ipis")
#: metric <- outcome-table column (per-trapped-call mean)
_OUTCOME_COLUMNS = {"violations": "violation", "dropped_tracer": "dropped_tracer",
                    "dropped_livepatch": "dropped_livepatch", "spurious": "spurious",
                    "crashes": "crash"}
#: the busiest sites of a kind whose per-site windows are drawn one by one
EXACT_SITES = 16
_CHUNK = 32768  # trials per vectorised chunk: bounds memory, not results
_NS = 1e-9      # rates are per second, times in ns

#: functions whose sites are live patched in every scenario (DOMAIN.md §5)
LIVEPATCHED = ("do_IRQ", "__migrate_task")


@dataclass(frozen=True)
class Stage:
    """One step of a scenario's ordered patch plan.

    ``target`` is ``ftrace_call`` / ``ftrace_regs_call`` (one trampoline call
    rewritten; ``kinds`` = site kinds routed through that trampoline then),
    ``sites`` (``kinds`` = site kinds whose call sites change) or ``publish``
    (one sync round after publishing the ops pointer, no text change).
    """

    target: str
    kinds: tuple = ()


class _Plans(dict):
    """Ordered plans per scenario, derived once from the emulator's own
    kernel-ordered plan (:func:`derive_plan`), so the simulator and the
    emulator can never patch in different orders."""

    def __missing__(self, scenario):
        self[scenario] = plan = derive_plan(scenario)
        return plan


#: scenario -> tuple of :class:`Stage` (filled on first use)
PLANS = _Plans()

_TRAMPOLINE_OF = {"ftrace_call": "ftrace_caller", "ftrace_regs_call": "ftrace_regs_caller"}


def derive_plan(scenario):
    """The :class:`Stage` tuple of *scenario* derived from the emulator's plan.

    Walks ``workbench.scenario.load_scenario(scenario).plan(image)`` (the
    kernel-ordered text batches and syncs) and, for each trampoline-call
    batch, records the site kinds whose sites call that trampoline at that
    moment (the before state until the sites batch, the after state from
    then on). Fills :data:`PLANS`; needs the emulator's image (binutils).
    """
    from .ftrace import Sync, TextBatch
    from .image import build_image
    from .scenario import load_scenario
    sc, image = load_scenario(scenario), build_image()
    before, after = sc.states(image)
    lp = sc.livepatched()
    kind = {fn: "livepatched" if fn in lp else "ordinary" for fn in image.functions}
    stages, state = [], before
    for step in sc.plan(image):
        if isinstance(step, Sync):
            stages.append(Stage("publish"))
        elif isinstance(step, TextBatch) and step.name == "sites":
            stages.append(Stage("sites", tuple(k for k in SITE_KINDS
                                               if any(kind[c.name] == k for c in step.changes))))
            state = after
        elif isinstance(step, TextBatch):
            target = step.name.split(":")[0]
            routed = {kind[fn] for fn in image.functions if state.site_target(fn) == _TRAMPOLINE_OF[target]}
            stages.append(Stage(target, tuple(k for k in SITE_KINDS if k in routed)))
    return tuple(stages)


#: illustrative per-CPU call rates (calls/s) under a busy build; assumptions
DEFAULT_HOT = (("do_IRQ", 1000.0), ("__migrate_task", 20.0), ("schedule", 5000.0))


@dataclass(frozen=True)
class Workload:
    """Per-CPU call rates (calls per second) of the traced functions.

    ``hot``: named functions and rates (a dict or pairs). ``tail_functions``:
    M ordinary functions whose rates follow ``j^-zipf_s`` and sum to
    ``tail_rate``. Defaults are illustrative: M = 40,000 is ftrace's batch
    size (Rostedt, 2019); the rates are assumptions, not measurements.
    ``dispersion`` d >= 0 makes calls bursty (gamma-Poisson): in each armed
    window the rate of a whole site group (one kind, one stage) is scaled by
    one Gamma(1/d, d) factor, bursts moving a kind's functions together, so
    a group's trapped count has variance ``mu + d mu^2``. Raises
    :class:`ConfigError` for a negative rate or an out-of-range parameter.
    """

    hot: tuple = DEFAULT_HOT
    tail_functions: int = 40_000
    tail_rate: float = 2e6
    zipf_s: float = 1.0
    dispersion: float = 0.0

    def __post_init__(self):
        pairs = self.hot.items() if isinstance(self.hot, dict) else self.hot
        hot = []
        for name, rate in pairs:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"rate: function names must be non-empty strings, got {name!r}")
            hot.append((name, finite_range(f"rate[{name}]", rate, 0)))
        object.__setattr__(self, "hot", tuple(hot))
        object.__setattr__(self, "tail_functions",
                           int(check_range("tail_functions", self.tail_functions, 0, 2_000_000, integer=True)))
        object.__setattr__(self, "tail_rate", finite_range("tail_rate", self.tail_rate, 0))
        object.__setattr__(self, "zipf_s", check_range("zipf_s", self.zipf_s, 0, 10))
        object.__setattr__(self, "dispersion", check_range("dispersion", self.dispersion, 0, 10_000))
        if self.tail_functions == 0 and self.tail_rate > 0:
            raise ConfigError("tail_rate: must be 0 when tail_functions is 0")


@lru_cache(maxsize=256)
def _zipf_profile(m, s):
    """Top ``EXACT_SITES`` normalised Zipf weights and the sum of all squares."""
    w = np.arange(1, m + 1, dtype=float) ** -s
    w /= w.sum()
    return w[:EXACT_SITES].copy(), float(np.dot(w, w))


@dataclass
class _Sites:
    """Sites of one kind: the busiest exactly, the rest as sums."""

    count: int
    top: np.ndarray
    rest_total: float
    rest_sumsq: float

    @property
    def total(self):
        return float(self.top.sum()) + self.rest_total


@lru_cache(maxsize=256)
def _site_summary(workload):
    hot = dict(workload.hot)
    lp = np.array([hot[n] for n in LIVEPATCHED], dtype=float)
    other = np.array([r for n, r in workload.hot if n not in LIVEPATCHED], dtype=float)
    m = workload.tail_functions
    if m:
        top_w, sumsq_w = _zipf_profile(m, workload.zipf_s)
        tail_top, tail_sumsq = workload.tail_rate * top_w, workload.tail_rate ** 2 * sumsq_w
    else:
        tail_top, tail_sumsq = np.zeros(0), 0.0
    rates = np.sort(np.concatenate([other, tail_top]))[::-1]
    top, rest = rates[:EXACT_SITES], rates[EXACT_SITES:]
    # everything not in `top`: the rest of the listed rates plus the tail
    # beyond its first EXACT_SITES entries
    tail_rest = workload.tail_rate - tail_top.sum()
    tail_rest_sq = tail_sumsq - float(np.dot(tail_top, tail_top))
    return {
        "livepatched": _Sites(len(lp), np.sort(lp)[::-1], 0.0, 0.0),
        "ordinary": _Sites(len(other) + m, top, float(rest.sum()) + max(tail_rest, 0.0),
                           float(np.dot(rest, rest)) + max(tail_rest_sq, 0.0)),
    }


@dataclass(frozen=True)
class RaceConfig:
    """One configuration of the race: scenario, strategy, protocol, CPUs, workload, timing.

    ``protocol`` defaults to ``stop_machine`` for the ``stop_machine``
    strategy and ``batched`` (ftrace's protocol) otherwise; the two must
    agree. ``trampolines=False`` drops the trampoline-call stages (a plain
    text_poke batch, as in Bristot's jump-label measurement). The expected
    patch (hence every armed window) must fit in ``horizon_ns``. Raises
    :class:`ConfigError` naming the bad parameter.
    """

    scenario: str = "seed"
    strategy: str = "skip"
    protocol: str = None
    cpus: int = 64
    workload: Workload = field(default_factory=Workload)
    timing: Timing = field(default_factory=Timing)
    trampolines: bool = True
    horizon_ns: float = 3.6e12

    def __post_init__(self):
        check_choice("scenario", self.scenario, SCENARIOS)
        check_choice("strategy", self.strategy, STRATEGIES)
        implied = "stop_machine" if self.strategy == "stop_machine" else "batched"
        protocol = implied if self.protocol is None else check_choice("protocol", self.protocol, PROTOCOLS)
        if (protocol == "stop_machine") != (self.strategy == "stop_machine"):
            raise ConfigError(f"protocol: {protocol!r} does not go with strategy {self.strategy!r}; "
                              "stop_machine is both a strategy and its protocol")
        object.__setattr__(self, "protocol", protocol)
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
    strategy, site_kind, trap_site with ``n_trapped`` and per-call means; see
    docs/ARCHITECTURE.md). Several rows for one key are averaged weighted by
    ``n_trapped``. A key with no row (``stop_machine`` never traps) counts as
    zero per call (:meth:`has` tells; :func:`simulate` notes it). Delay
    columns (``delay_insns``/``delay_traps``) are not used: real-time cost is
    modelled by the handler cost and, for spin, the remaining window.
    """

    COLUMNS = ("violation", "dropped_tracer", "dropped_livepatch", "spurious", "crash")
    KEY = ("strategy", "site_kind", "trap_site")

    def __init__(self, frame, scenario, entry="v5.3"):
        self.scenario, self.entry = scenario, entry
        need = set(self.KEY) | set(self.COLUMNS) | {"n_trapped"}
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
        self._means, self._n = {}, {}
        weights = rows["n_trapped"].to_numpy(float)
        for key, idx in rows.groupby(list(self.KEY)).indices.items():
            w = weights[idx] if weights[idx].sum() > 0 else np.ones(len(idx))
            self._means[key] = np.average(values[idx], axis=0, weights=w)
            self._n[key] = int(weights[idx].sum())

    @classmethod
    def empty(cls, scenario, entry="v5.3"):
        """No measured outcomes: every trapped call counts zero (counting only)."""
        cols = ("scenario", "entry", "n_trapped") + cls.KEY + cls.COLUMNS
        return cls(pd.DataFrame(columns=cols), scenario, entry)

    def per_call(self, strategy, site_kind, trap_site):
        """Mapping metric -> expected count per trapped call (0 where no row)."""
        means = self._means.get((strategy, site_kind, trap_site))
        if means is None:
            means = np.zeros(len(self.COLUMNS))
        return {m: float(means[self.COLUMNS.index(c)]) for m, c in _OUTCOME_COLUMNS.items()}

    def has(self, strategy, site_kind, trap_site):
        """Whether the table has a row for this key."""
        return (strategy, site_kind, trap_site) in self._means

    def n_trapped(self, strategy, site_kind, trap_site):
        """How many emulated trapped calls stand behind a row (0 if none)."""
        return self._n.get((strategy, site_kind, trap_site), 0)


def load_outcomes(scenario, entry="v5.3"):
    """Run/load the emulator's outcome table (cached by code version there)."""
    from .explore import load_outcome_table  # lazy: the emulator is heavy
    check_choice("scenario", scenario, SCENARIOS)
    return PerCallOutcomes(load_outcome_table(scenario, entry), scenario, entry)


# -- the timeline shared by the closed form and the Monte Carlo ---------------

@dataclass
class _Group:
    kind: str
    trap_site: str
    handler_ns: float
    sites: _Sites
    outcome: dict


@dataclass
class _Stage:
    what: str       # trampoline | publish | batched | per_site
    sites: int
    groups: list
    d_write: float = 0.0  # write time inside every armed window of the stage


def _timeline(cfg, outcomes):
    t, summary = cfg.timing, _site_summary(cfg.workload)
    look = (lambda kind, site: dict.fromkeys(_OUTCOME_COLUMNS, 0.0)) if outcomes is None else \
        (lambda kind, site: outcomes.per_call(cfg.strategy, kind, site))
    stages = []
    for st in PLANS[cfg.scenario]:
        if st.target in ("ftrace_call", "ftrace_regs_call"):
            if not cfg.trampolines:
                continue
            # everything routed through the trampoline shares its one window
            groups = [_Group(k, st.target, t.handler_ns,
                             _Sites(summary[k].count, np.zeros(0), summary[k].total, 0.0),
                             look(k, st.target)) for k in st.kinds]
            # one site: tail write + first-byte write inside the window
            stages.append(_Stage("trampoline", 1, groups, 2 * t.write_ns))
        elif st.target == "publish":
            if cfg.trampolines:
                stages.append(_Stage("publish", 0, []))
        else:
            k = sum(summary[kind].count for kind in st.kinds)
            if k == 0:  # nothing to rewrite: ftrace runs no protocol
                continue
            if cfg.protocol == "per_site":
                groups = [_Group(kind, "fentry", t.handler_ns, summary[kind], look(kind, "fentry"))
                          for kind in st.kinds]
                stages.append(_Stage("per_site", k, groups, 2 * t.write_ns))
            else:
                h = t.handler_batch_ns if k > 1 else t.handler_ns  # no search for one entry
                groups = [_Group(kind, "fentry", h,
                                 _Sites(summary[kind].count, np.zeros(0), summary[kind].total, 0.0),
                                 look(kind, "fentry")) for kind in st.kinds]
                # site i: int3 done at i*w; R1; K tails; R2; first bytes in
                # the same order, site i's done at 2Kw + R1 + R2 + i*w
                stages.append(_Stage("batched", k, groups, 2 * k * t.write_ns))
    return stages


def _ipis(cfg, stages):
    if cfg.protocol == "stop_machine":
        return 1  # the stop_machine rendezvous
    return sum(1 if s.what == "publish" else 3 * (s.sites if s.what == "per_site" else 1) for s in stages)


# -- spin: a CPU spinning on an int3 makes no further calls ---------------------
#
# Under spin a trapped CPU waits until its site's new first byte is written
# (the end of the window), so per CPU and armed window it traps at most once:
# its first call into the window's armed sites comes at T ~ Exp(L) (L its
# rate into them), traps if T < W, and then waits W - T. The closed form
# takes the expectations over the window's two sync rounds by quadrature
# (_round_nodes); the Monte Carlo draws the CPUs that trap as a Binomial.

#: tanh-sinh rule over a sync round's uniform (step, half-width): 47 nodes,
#: a round's moments to ~1e-12 (tests/test_race.py checks them)
_TS_STEP, _TS_HALF = 0.15, 3.45
#: Gauss-Legendre rule for the waits of a window shared by bursty groups
_GL_Y = np.polynomial.legendre.leggauss(64)
#: spacing in ln(rate) of the table through which the per-site rest is summed
_REST_STEP = 0.05
_REST_DIRECT = 256  # at most this many rest rates are evaluated one by one


def _expm1_over(y):
    """``expm1(y) / y`` (1 at y = 0)."""
    out = np.ones_like(y)
    nz = y != 0
    out[nz] = np.expm1(y[nz]) / y[nz]
    return out


def _spin_p(x, d=0.0):
    """P(a CPU traps in a window) for ``x = L W``: ``1 - E[exp(-G x)]``.

    G is the group's burst factor, Gamma(1/d, d) (1 when d = 0), so this is
    ``1 - e^-x``, or ``1 - (1 + d x)^(-1/d)`` for d > 0.
    """
    x = np.asarray(x, float)
    if d == 0:
        return -np.expm1(-x)
    return -np.expm1(-np.log1p(d * x) / d)


def _spin_q(x, d=0.0):
    """A CPU's expected wait as a fraction of the window, ``E[(W - T) 1{T < W}] / W``.

    ``1 - (1 - e^-x) / x`` for d = 0 and ``1 - int_0^1 (1 + d x u)^(-1/d) du``
    (the burst factor averaged out) otherwise; small x by the series
    ``x/2 - (1+d) x^2/6 + (1+d)(1+2d) x^3/24 - ...`` (its first term gives
    the low-rate limit ``L W^2 / 2``).
    """
    x = np.asarray(x, float)
    out = np.empty_like(x)
    c2, c3 = 1 + d, (1 + d) * (1 + 2 * d)
    c4 = c3 * (1 + 3 * d)
    small = x * (1 + 3 * d) < 1e-3
    xs, xl = x[small], x[~small]
    out[small] = xs * (0.5 - xs * (c2 / 6 - xs * (c3 / 24 - xs * c4 / 120)))
    if d == 0:
        integral = -np.expm1(-xl) / xl
    else:
        lg = np.log1p(d * xl)
        integral = lg * _expm1_over((1 - 1 / d) * lg) / (d * xl)
    out[~small] = 1 - integral
    return out


def _spin_v(x):
    """``Var(W - T | T < W) / W^2`` for T ~ Exp(L), x = L W (a truncated exponential)."""
    x = np.asarray(x, float)
    out = np.empty_like(x)
    small = x < 1e-2
    out[small] = 1 / 12 - x[small] ** 2 / 240
    xl = x[~small]
    with np.errstate(over="ignore"):
        out[~small] = 1 / xl ** 2 - 0.25 / np.sinh(xl / 2) ** 2
    return np.maximum(out, 0.0)


def _frozen(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


@lru_cache(maxsize=1024)
def _round_nodes(timing, cpus):
    """Quadrature of one sync round on *cpus* CPUs: values (ns), weights summing to 1.

    The atom at ``ipi_base_ns`` (no other CPU had interrupts off, probability
    ``(1-p)^(N-1)``) is one node of its own; the continuous part is
    :meth:`Timing.draw_rounds`' inverse CDF integrated over its uniform
    ``u in ((1-p)^(N-1), 1)`` by a tanh-sinh rule, which is exact to ~1e-12
    despite the logarithmic tail at u -> 1.
    """
    n, p, s, base = int(cpus) - 1, timing.irq_off_prob, timing.irq_off_scale_ns, timing.ipi_base_ns
    if n <= 0 or p <= 0.0 or s <= 0.0:
        return _frozen(np.array([base]), np.array([1.0]))
    atom = math.exp(n * math.log1p(-p)) if p < 1.0 else 0.0
    half = round(_TS_HALF / _TS_STEP)
    tau = _TS_STEP * np.arange(-half, half + 1)
    e = np.pi * np.sinh(tau)
    weights = np.cosh(tau) / np.cosh(e / 2) ** 2
    weights *= (1 - atom) / weights.sum()
    upper = (1 - atom) / (1 + np.exp(e))  # 1 - u
    with np.errstate(divide="ignore"):
        gap = -np.expm1(np.log1p(-upper) / n)  # 1 - u^(1/n)
        tail = np.maximum(math.log(p) - np.log(gap), 0.0)
    values = base + s * tail
    if atom > 0:
        values, weights = np.concatenate([[base], values]), np.concatenate([[atom], weights])
    return _frozen(values, weights)


@lru_cache(maxsize=256)
def _window_nodes(timing, cpus, d_write):
    """Quadrature of a window ``W = d_write + R1 + R2``: values (ns) and weights."""
    r, w = _round_nodes(timing, cpus)
    return _frozen((d_write + r[:, None] + r[None, :]).ravel(), (w[:, None] * w[None, :]).ravel())


@lru_cache(maxsize=4096)
def _spin_shared(timing, cpus, d_write, rates, d):
    """Spin in one window shared by groups with per-CPU *rates* (calls/s).

    Returns, per CPU, the probability of trapping on each group and the
    expected wait (ns), over ``W = d_write + R1 + R2`` and the groups' burst
    factors. With d = 0 (or one group) ``P(trap) = E[1 - e^(-L W)]``, split
    over the groups by rate, and ``E[wait] = E[W - (1 - e^(-L W)) / L]``.
    Bursty groups (one Gamma factor each) have ``E[e^(-sum G_g L_g t)] =
    phi(t) = prod_g (1 + d L_g t)^(-1/d)``, so ``P(first trap on g) =
    L_g int_0^W phi(t) / (1 + d L_g t) dt`` and ``E[wait] = int_0^W (1 -
    phi(t)) dt``, integrated in ``y = ln(1 + L t)`` by Gauss-Legendre.
    """
    W, w = _window_nodes(timing, cpus, d_write)
    lam = np.asarray(rates, float) * _NS
    total = float(lam.sum())
    if total <= 0:
        return (0.0,) * len(rates), 0.0
    if d == 0 or np.count_nonzero(lam) == 1:
        x = total * W
        traps = float(w @ _spin_p(x, d)) * lam / total
        return tuple(float(v) for v in traps), float(w @ (W * _spin_q(x, d)))
    nodes, gl = _GL_Y
    span = np.log1p(total * W)[:, None] / 2
    y = (nodes[None, :] + 1) * span
    t = np.expm1(y) / total
    dt = gl[None, :] * span * np.exp(y) / total
    logs = np.log1p(d * lam[:, None, None] * t[None]) / d  # -ln of each group's factor of phi
    log_phi = -logs.sum(axis=0)
    wait = (-np.expm1(log_phi) * dt).sum(axis=1)
    traps = [lam[g] * (np.exp(log_phi - d * logs[g]) * dt).sum(axis=1) for g in range(len(lam))]
    return tuple(float(w @ a) for a in traps), float(w @ wait)


@lru_cache(maxsize=4)  # up to 2M rates each
def _rest_rates(workload, kind):
    """Per-CPU rates (calls/s) of the sites of *kind* that _site_summary lumps as its rest."""
    if kind != "ordinary":
        return np.zeros(0)
    other = np.array([r for name, r in workload.hot if name not in LIVEPATCHED], dtype=float)
    m = workload.tail_functions
    tail = np.zeros(0)
    if m:
        tail = np.arange(1, m + 1, dtype=float) ** -workload.zipf_s
        tail *= workload.tail_rate / tail.sum()
    rates = np.sort(np.concatenate([other, tail[:EXACT_SITES]]))[::-1]
    return _frozen(np.concatenate([rates[EXACT_SITES:], tail[EXACT_SITES:]]))[0]


def _lagrange4(table, y0, step, y):
    """Cubic (4-point Lagrange) interpolation of rows of *table* on a uniform grid."""
    pos = (y - y0) / step
    i = np.clip(np.floor(pos).astype(int), 1, table.shape[-1] - 3)
    s = pos - i
    c = (-s * (s - 1) * (s - 2) / 6, (s + 1) * (s - 1) * (s - 2) / 2,
         -(s + 1) * s * (s - 2) / 2, (s + 1) * s * (s - 1) / 6)
    return sum(cj * table[..., i + j - 1] for j, cj in enumerate(c))


def _site_terms(lam, W, w, d):
    """Per site rates *lam* (per ns): E[p], E[W q] and E[p^2] over the window nodes."""
    out = np.empty((3, lam.size))
    for start in range(0, lam.size, 64):  # bounds memory
        x = lam[start:start + 64, None] * W[None, :]
        p = _spin_p(x, d)
        out[0, start:start + 64] = p @ w
        out[1, start:start + 64] = (W * _spin_q(x, d)) @ w
        out[2, start:start + 64] = (p * p) @ w
    return out


def _rest_sums(rates, W, w, d):
    """Sums over per-site windows of the rest: E[traps], E[wait] (ns), variance of the traps.

    Each rest site has its own window, iid ``W``. Rates with ``l M5^(1/5) <
    1e-4 / (1 + 3d)`` (M5 = E[W^5]) use the series in the window's moments
    (relative error below 1e-15); the others a table of the three
    expectations on a grid in ln(rate), spacing 0.05, interpolated (cubic,
    in the logarithm) at every rate (relative error ~1e-7).
    """
    lam = rates[rates > 0] * _NS
    if not lam.size:
        return 0.0, 0.0, 0.0
    mom = [float(w @ W ** k) for k in range(6)]
    c = [0.0, 1.0, 1 + d, (1 + d) * (1 + 2 * d), (1 + d) * (1 + 2 * d) * (1 + 3 * d)]
    series = lam * mom[5] ** 0.2 * (1 + 3 * d) < 1e-4
    power = [float(np.sum(lam[series] ** k)) for k in range(5)]
    traps = sum((-1) ** (k + 1) * c[k] * power[k] * mom[k] / math.factorial(k) for k in range(1, 5))
    wait = sum((-1) ** (k + 1) * c[k] * power[k] * mom[k + 1] / math.factorial(k + 1) for k in range(1, 5))
    var = power[2] * (mom[2] - mom[1] ** 2) - c[2] * power[3] * (mom[3] - mom[1] * mom[2])
    big = lam[~series]
    if big.size <= _REST_DIRECT:
        terms = _site_terms(big, W, w, d)
    elif big.size:
        lo, hi = math.log(big.min()), math.log(big.max())
        grid_y = lo + _REST_STEP * np.arange(-1, math.ceil((hi - lo) / _REST_STEP) + 3)
        table = np.log(np.maximum(_site_terms(np.exp(grid_y), W, w, d), 1e-300))
        terms = np.exp(_lagrange4(table, grid_y[0], _REST_STEP, np.log(big)))
    if big.size:
        traps += float(terms[0].sum())
        wait += float(terms[1].sum())
        var += float(np.sum(terms[2] - terms[0] ** 2))
    return traps, wait, max(var, 0.0)


@lru_cache(maxsize=256)
def _spin_per_site(timing, cpus, d_write, workload, kind):
    """Spin over the per-site windows of one site kind, per CPU.

    Every site i has its own window ``W_i = d_write + R1 + R2`` and traps a
    CPU with probability ``p_i = 1 - e^(-l_i W_i)`` (averaged over the kind's
    burst factor when bursty); a CPU can trap once in each. Returns the
    expected traps and waits (ns) of the top sites (arrays) and the rest's
    summed traps, wait and trap variance (:func:`_rest_sums`).
    """
    W, w = _window_nodes(timing, cpus, d_write)
    d = workload.dispersion
    top = _site_summary(workload)[kind].top * _NS
    terms = _site_terms(top, W, w, d)
    rest = _rest_sums(_rest_rates(workload, kind), W, w, d)
    return terms[0], terms[1], rest


def _spin_expect(cfg, stage):
    """Per CPU and per group of *stage*: expected traps; and the stage's expected wait (ns)."""
    t, n, d = cfg.timing, cfg.cpus, cfg.workload.dispersion
    if stage.what == "per_site":
        traps, wait = [], 0.0
        for g in stage.groups:
            top_p, top_b, (rest_p, rest_b, _) = _spin_per_site(t, n, stage.d_write, cfg.workload, g.kind)
            traps.append(float(top_p.sum()) + rest_p)
            wait += float(top_b.sum()) + rest_b
        return traps, wait
    traps, wait = _spin_shared(t, n, stage.d_write, tuple(g.sites.total for g in stage.groups), d)
    return list(traps), wait


def _count(res, g, k, rng):
    """Add *k* trapped calls of group *g*: the count, its outcomes, handler time."""
    res["trapped"] += k
    for m, v in g.outcome.items():
        if v > 0:
            whole, frac = math.floor(v), v - math.floor(v)
            res[m] += whole * k + (rng.binomial(k, frac) if frac > 0 else 0)
    res["stall_ns"] += k * g.handler_ns


def _spin_wait(rng, k, w, x):
    """Summed waits of *k* trapped CPUs per window (last axis summed if 2-d).

    Each waits ``W - T`` with T ~ Exp(L) given T < W; the sum is drawn from a
    normal with the exact conditional mean and variance, clipped
    symmetrically about the mean inside ``[0, k W]`` so the mean stays exact.
    """
    p = -np.expm1(-x)
    per = np.divide(w * _spin_q(x), p, out=np.zeros_like(p), where=p > 0)
    mean, var, room = k * per, k * w * w * _spin_v(x), k * np.minimum(per, w - per)
    if mean.ndim == 2:
        mean, var, room = mean.sum(axis=1), var.sum(axis=1), room.sum(axis=1)
    return mean + np.clip(np.sqrt(var) * rng.standard_normal(mean.shape), -room, room)


def _spin_draw_shared(res, groups, w, n, disp, rng, size):
    """Spin in one shared window *w* per trial: Binomial(N, p) CPUs trap, split by rate."""
    live = [g for g in groups if g.sites.total > 0]
    if not live:
        return
    lam = [g.sites.total * _NS * (rng.gamma(1 / disp, disp, size) if disp > 0 else np.ones(size))
           for g in live]
    total = sum(lam)
    x = total * w
    k = rng.binomial(n, -np.expm1(-x))
    left, rate_left = k, total
    for g, lg in zip(live[:-1], lam[:-1]):
        share = np.divide(lg, rate_left, out=np.zeros(size), where=rate_left > 0)
        kg = rng.binomial(left, np.clip(share, 0.0, 1.0))
        _count(res, g, kg, rng)
        left, rate_left = left - kg, rate_left - lg
    _count(res, live[-1], left, rng)
    res["stall_ns"] += _spin_wait(rng, k, w, x)


def _closed(cfg, outcomes):
    """Closed-form expectations of every metric; see closed_form()."""
    t, n = cfg.timing, cfg.cpus
    mu, var = t.round_moments(n)
    stages = _timeline(cfg, outcomes)
    out = dict.fromkeys(METRICS, 0.0)
    out["ipis"] = float(_ipis(cfg, stages))
    sites = sum(s.sites for s in stages if s.what in ("batched", "per_site"))
    if cfg.protocol == "stop_machine":
        writes = sum(s.sites for s in stages)  # one whole-instruction write each
        sm_mean, _ = t.stop_machine_moments(n)
        out["patch_ns"] = sm_mean + writes * t.write_ns + sites * t.prepare_ns
        out["stall_ns"] = n * out["patch_ns"]
        return out
    for s in stages:
        if s.what == "publish":
            out["patch_ns"] += mu
            continue
        per = s.sites if s.what == "per_site" else 1
        # a protocol run: 3 writes per site and 3 rounds; its window holds
        # 2 of the writes and the first 2 rounds
        out["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + 3 * per * mu
        ew = s.d_write + 2 * mu
        if s.what in ("batched", "per_site"):
            out["window_ns"] = ew
        # spin: a trapped CPU makes no further calls until the window closes
        spin = _spin_expect(cfg, s) if cfg.strategy == "spin" else None
        for i, g in enumerate(s.groups):
            trapped = n * (spin[0][i] if spin is not None else _NS * g.sites.total * ew)
            out["trapped"] += trapped
            for m, v in g.outcome.items():
                out[m] += trapped * v
            out["stall_ns"] += trapped * g.handler_ns
        if spin is not None:
            out["stall_ns"] += n * spin[1]
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


def _draw_chunk(cfg, stages, rng, size):
    """Per-trial values of every metric for *size* trials (arrays)."""
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
            if s.what == "batched":
                res["window_ns"] = w
            if spin:
                _spin_draw_shared(res, s.groups, w, n, disp, rng, size)
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
                        xs = w * (top * _NS) * (1.0 if gain is None else gain[:, None])
                        k = rng.binomial(n, -np.expm1(-xs))
                        _count(res, g, k.sum(axis=1), rng)
                        res["stall_ns"] += _spin_wait(rng, k, w, xs)
                    else:
                        x += w @ top
                rest = g.sites.count - top.size
                # the rest's window rounds and third rounds, summed apart so
                # window_ns and patch_ns share them (the rate-weighted
                # exposure below is drawn from its own exact moments)
                r12_rest = t.draw_round_sum(rng, n, 2 * rest, size)
                window_rounds += r12_rest
                all_rounds += r12_rest + t.draw_round_sum(rng, n, rest, size)
                if spin:
                    # the rest's traps per CPU from their exact mean and
                    # variance (_rest_sums); each waits the rest's mean wait
                    _, _, (rest_p, rest_b, rest_v) = _spin_per_site(t, n, s.d_write, cfg.workload, g.kind)
                    if rest_p > 0:
                        lam = n * gamma_matched(rng, rest_p, rest_v, size)
                        k = rng.poisson(lam if gain is None else lam * gain)
                        _count(res, g, k, rng)
                        res["stall_ns"] += k * (rest_b / rest_p)
                    continue
                if g.sites.rest_total > 0:
                    x += gamma_matched(rng, g.sites.rest_total * ew, g.sites.rest_sumsq * 2 * var, size)
                exposures.append((g, x))
            res["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + all_rounds
            res["window_ns"] = s.d_write + window_rounds / max(s.sites, 1)
        for g, x in exposures:
            if g.sites.total <= 0:
                continue
            lam = n * _NS * x
            if disp > 0:
                lam = lam * rng.gamma(1 / disp, disp, size)
            _count(res, g, rng.poisson(lam), rng)
    return res


def _config_columns(cfg, outcomes, trials, seed, stream):
    w, t = cfg.workload, cfg.timing
    stages = _timeline(cfg, None)
    row = {"scenario": cfg.scenario, "entry": outcomes.entry, "strategy": cfg.strategy,
           "protocol": cfg.protocol, "cpus": cfg.cpus,
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
    stages = _timeline(config, outcomes)
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
        chunk = _draw_chunk(config, stages, rng, size)
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


def simulate_many(configs, outcomes, trials=10_000, seed=0, *, level=0.95):
    """:func:`simulate` each config (stream = its index); concatenated frame.

    *outcomes* is one :class:`PerCallOutcomes`, a mapping scenario -> it, or
    None (load each scenario's emulator table once). Each point's stream depends only on *seed* and its index, so results do
    not depend on how points are split across workers.
    """
    frames, loaded = [], {}
    for i, cfg in enumerate(configs):
        if outcomes is None:
            if cfg.scenario not in loaded:
                loaded[cfg.scenario] = load_outcomes(cfg.scenario)
            table = loaded[cfg.scenario]
        else:
            table = outcomes[cfg.scenario] if isinstance(outcomes, dict) else outcomes
        frames.append(simulate(cfg, table, trials, seed, stream=i, level=level))
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
