"""The ``spin`` strategy's cost: a CPU spinning on an int3 makes no further calls.

Under spin a trapped CPU waits until its site's new first byte is written
(the end of the window), so per CPU and armed window it traps at most once:
its first call into the window's armed sites comes at T ~ Exp(L) (L its
rate into them), traps if T < W, and then waits W - T. The closed form
takes the expectations over the window's two sync rounds by quadrature
(:func:`round_nodes`); the Monte Carlo draws the CPUs that trap as a
Binomial. Used by :mod:`workbench.race.simulator`; the derivations are in docs/RACE.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from workbench.base.numeric import fdot
from workbench.base.units import NS
from workbench.race.workload import EXACT_SITES, LIVEPATCHED, Workload, site_summary

if TYPE_CHECKING:  # the simulator and the timeline import this module
    from workbench.race.simulator import RaceConfig
    from workbench.race.timeline import SiteGroup, TimelineStage
    from workbench.race.timing import Timing

__all__ = ["rest_rates", "rest_sums", "round_nodes", "site_terms", "spin_draw_shared", "spin_expect", "spin_p",
           "spin_per_site", "spin_q", "spin_shared", "spin_v", "spin_wait", "window_nodes"]

#: tanh-sinh rule over a sync round's uniform (step, half-width): 47 nodes,
#: a round's moments to ~1e-12 (tests/test_race.py checks them)
_TS_STEP, _TS_HALF = 0.15, 3.45
#: Gauss-Legendre rule for the waits of a window shared by bursty groups
_GL_Y = np.polynomial.legendre.leggauss(64)
#: spacing in ln(rate) of the table through which the per-site rest is summed
_REST_STEP = 0.05
_REST_DIRECT = 256  # at most this many rest rates are evaluated one by one


def _expm1_over(y: np.ndarray) -> np.ndarray:
    """``expm1(y) / y`` (1 at y = 0)."""
    out = np.ones_like(y)
    nz = y != 0
    out[nz] = np.expm1(y[nz]) / y[nz]
    return out


def spin_p(x: np.ndarray, d: float = 0.0) -> np.ndarray:
    """P(a CPU traps in a window) for ``x = L W``: ``1 - E[exp(-G x)]``.

    G is the group's burst factor, Gamma(1/d, d) (1 when d = 0), so this is
    ``1 - e^-x``, or ``1 - (1 + d x)^(-1/d)`` for d > 0.
    """
    x = np.asarray(x, float)
    if d == 0:
        return -np.expm1(-x)
    return -np.expm1(-np.log1p(d * x) / d)


def spin_q(x: np.ndarray, d: float = 0.0) -> np.ndarray:
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


def spin_v(x: np.ndarray) -> np.ndarray:
    """``Var(W - T | T < W) / W^2`` for T ~ Exp(L), x = L W (a truncated exponential)."""
    x = np.asarray(x, float)
    out = np.empty_like(x)
    small = x < 1e-2
    out[small] = 1 / 12 - x[small] ** 2 / 240
    xl = x[~small]
    with np.errstate(over="ignore"):
        out[~small] = 1 / xl ** 2 - 0.25 / np.sinh(xl / 2) ** 2
    return np.maximum(out, 0.0)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False
    return arrays


@lru_cache(maxsize=1024)
def round_nodes(timing: Timing, cpus: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature of one sync round on *cpus* CPUs: values (ns), weights summing to 1.

    The atom at ``ipi_base_ns`` (no other CPU had interrupts off, probability
    ``(1-p)^(N-1)``) is one node of its own; the continuous part is
    :meth:`Timing.draw_rounds`' inverse CDF integrated over its uniform
    ``u in ((1-p)^(N-1), 1)`` by a tanh-sinh rule, which is exact to ~1e-12
    despite the logarithmic tail at u -> 1. One CPU online: no round at all,
    one node at 0 ns (:meth:`Timing.sends_round`).
    """
    n, p, s, base = int(cpus) - 1, timing.irq_off_prob, timing.irq_off_scale_ns, timing.ipi_base_ns
    if not timing.sends_round(cpus):
        return _frozen(np.array([0.0]), np.array([1.0]))
    if p <= 0.0 or s <= 0.0:
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
def window_nodes(timing: Timing, cpus: int, d_write: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature of a window ``W = d_write + R1 + R2``: values (ns) and weights."""
    r, w = round_nodes(timing, cpus)
    return _frozen((d_write + r[:, None] + r[None, :]).ravel(), (w[:, None] * w[None, :]).ravel())


@lru_cache(maxsize=4096)
def spin_shared(timing: Timing, cpus: int, d_write: float, rates: np.ndarray, d: float):
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
    W, w = window_nodes(timing, cpus, d_write)
    lam = np.asarray(rates, float) * NS
    total = float(lam.sum())
    if total <= 0:
        return (0.0,) * len(rates), 0.0
    if d == 0 or np.count_nonzero(lam) == 1:
        x = total * W
        traps = fdot(w, spin_p(x, d)) * lam / total
        return tuple(float(v) for v in traps), fdot(w, W * spin_q(x, d))
    nodes, gl = _GL_Y
    span = np.log1p(total * W)[:, None] / 2
    y = (nodes[None, :] + 1) * span
    t = np.expm1(y) / total
    dt = gl[None, :] * span * np.exp(y) / total
    logs = np.log1p(d * lam[:, None, None] * t[None]) / d  # -ln of each group's factor of phi
    log_phi = -logs.sum(axis=0)
    wait = (-np.expm1(log_phi) * dt).sum(axis=1)
    traps = [lam[g] * (np.exp(log_phi - d * logs[g]) * dt).sum(axis=1) for g in range(len(lam))]
    return tuple(fdot(w, a) for a in traps), fdot(w, wait)


@lru_cache(maxsize=4)  # up to 2M rates each
def rest_rates(workload: Workload, kind: str) -> np.ndarray:
    """Per-CPU rates (calls/s) of the sites of *kind* that site_summary lumps as its rest."""
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


def _lagrange4(table: np.ndarray, y0: float, step: float, y: np.ndarray) -> np.ndarray:
    """Cubic (4-point Lagrange) interpolation of rows of *table* on a uniform grid."""
    pos = (y - y0) / step
    i = np.clip(np.floor(pos).astype(int), 1, table.shape[-1] - 3)
    s = pos - i
    c = (-s * (s - 1) * (s - 2) / 6, (s + 1) * (s - 1) * (s - 2) / 2,
         -(s + 1) * s * (s - 2) / 2, (s + 1) * s * (s - 1) / 6)
    return sum(cj * table[..., i + j - 1] for j, cj in enumerate(c))


def site_terms(lam: np.ndarray, W: np.ndarray, w: np.ndarray, d: float):
    """Per site rates *lam* (per ns): E[p], E[W q] and E[p^2] over the window nodes."""
    out = np.empty((3, lam.size))
    for start in range(0, lam.size, 64):  # bounds memory
        x = lam[start:start + 64, None] * W[None, :]
        p = spin_p(x, d)
        out[0, start:start + 64] = fdot(p, w)
        out[1, start:start + 64] = fdot(W * spin_q(x, d), w)
        out[2, start:start + 64] = fdot(p * p, w)
    return out


def rest_sums(rates: np.ndarray, W: np.ndarray, w: np.ndarray, d: float) -> tuple[float, float, float]:
    """Sums over per-site windows of the rest: E[traps], E[wait] (ns), variance of the traps.

    Each rest site has its own window, iid ``W``. Rates with ``l M5^(1/5) <
    1e-4 / (1 + 3d)`` (M5 = E[W^5]) use the series in the window's moments
    (relative error below 1e-15); the others a table of the three
    expectations on a grid in ln(rate), spacing 0.05, interpolated (cubic,
    in the logarithm) at every rate (relative error ~1e-7).
    """
    lam = rates[rates > 0] * NS
    if not lam.size:
        return 0.0, 0.0, 0.0
    mom = [fdot(w, W ** k) for k in range(6)]
    c = [0.0, 1.0, 1 + d, (1 + d) * (1 + 2 * d), (1 + d) * (1 + 2 * d) * (1 + 3 * d)]
    series = lam * mom[5] ** 0.2 * (1 + 3 * d) < 1e-4
    power = [float(np.sum(lam[series] ** k)) for k in range(5)]
    traps = sum((-1) ** (k + 1) * c[k] * power[k] * mom[k] / math.factorial(k) for k in range(1, 5))
    wait = sum((-1) ** (k + 1) * c[k] * power[k] * mom[k + 1] / math.factorial(k + 1) for k in range(1, 5))
    var = power[2] * (mom[2] - mom[1] ** 2) - c[2] * power[3] * (mom[3] - mom[1] * mom[2])
    big = lam[~series]
    if big.size <= _REST_DIRECT:
        terms = site_terms(big, W, w, d)
    elif big.size:
        lo, hi = math.log(big.min()), math.log(big.max())
        grid_y = lo + _REST_STEP * np.arange(-1, math.ceil((hi - lo) / _REST_STEP) + 3)
        table = np.log(np.maximum(site_terms(np.exp(grid_y), W, w, d), 1e-300))
        terms = np.exp(_lagrange4(table, grid_y[0], _REST_STEP, np.log(big)))
    if big.size:
        traps += float(terms[0].sum())
        wait += float(terms[1].sum())
        var += float(np.sum(terms[2] - terms[0] ** 2))
    return traps, wait, max(var, 0.0)


@lru_cache(maxsize=256)
def spin_per_site(timing: Timing, cpus: int, d_write: float, workload: Workload, kind: str, share: float = 1.0,
                  functions: tuple[str, ...] = ()):
    """Spin over the per-site windows of one site kind, per CPU.

    Every site i has its own window ``W_i = d_write + R1 + R2`` and traps a
    CPU with probability ``p_i = 1 - e^(-l_i W_i)`` (averaged over the kind's
    burst factor when bursty); a CPU can trap once in each. Returns the
    expected traps and waits (ns) of the top sites (arrays) and the rest's
    summed traps, wait and trap variance (:func:`rest_sums`). Every rate is
    the workload's times *share* (the simulator's ``_caller_share``).
    *functions* (live-patched kind only): the stage's own live-patched
    functions, when it involves only some of them.
    """
    W, w = window_nodes(timing, cpus, d_write)
    d = workload.dispersion
    top = site_summary(workload)[kind].top * NS * share
    if kind == "livepatched" and functions:
        hot = dict(workload.hot)
        top = np.sort(np.array([hot[f] for f in LIVEPATCHED if f in functions], float))[::-1] * NS * share
    terms = site_terms(top, W, w, d)
    rest = rest_sums(rest_rates(workload, kind) * share, W, w, d)
    return terms[0], terms[1], rest


def spin_expect(cfg: RaceConfig, stage: TimelineStage):
    """Per CPU and per group of *stage*: expected traps; and the stage's expected wait (ns)."""
    t, n, d = cfg.timing, cfg.cpus, cfg.workload.dispersion
    if stage.what == "per_site":
        traps, wait = [], 0.0
        for g in stage.groups:
            top_p, top_b, (rest_p, rest_b, _) = spin_per_site(t, n, stage.d_write, cfg.workload, g.kind, g.share,
                                                              g.functions)
            traps.append(float(top_p.sum()) + rest_p)
            wait += float(top_b.sum()) + rest_b
        return traps, wait
    traps, wait = spin_shared(t, n, stage.d_write, tuple(g.sites.total for g in stage.groups), d)
    return list(traps), wait


def spin_wait(rng: np.random.Generator, k: np.ndarray, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Summed waits of *k* trapped CPUs per window (last axis summed if 2-d).

    Each waits ``W - T`` with T ~ Exp(L) given T < W; the sum is drawn from a
    normal with the exact conditional mean and variance, clipped
    symmetrically about the mean inside ``[0, k W]`` so the mean stays exact.
    """
    p = -np.expm1(-x)
    per = np.divide(w * spin_q(x), p, out=np.zeros_like(p), where=p > 0)
    mean, var, room = k * per, k * w * w * spin_v(x), k * np.minimum(per, w - per)
    if mean.ndim == 2:
        mean, var, room = mean.sum(axis=1), var.sum(axis=1), room.sum(axis=1)
    return mean + np.clip(np.sqrt(var) * rng.standard_normal(mean.shape), -room, room)


def spin_draw_shared(res: dict[str, np.ndarray], groups: list[SiteGroup], w: np.ndarray, n: int, disp: float,
                     rng: np.random.Generator, size: int, count: Callable) -> None:
    """Spin in one shared window *w* per trial: Binomial(N, p) CPUs trap, split by rate."""
    live = [g for g in groups if g.sites.total > 0]
    if not live:
        return
    lam = [g.sites.total * NS * (rng.gamma(1 / disp, disp, size) if disp > 0 else np.ones(size))
           for g in live]
    total = sum(lam)
    x = total * w
    k = rng.binomial(n, -np.expm1(-x))
    left, rate_left = k, total
    for g, lg in zip(live[:-1], lam[:-1], strict=True):
        share = np.divide(lg, rate_left, out=np.zeros(size), where=rate_left > 0)
        kg = rng.binomial(left, np.clip(share, 0.0, 1.0))
        count(res, g, kg, rng)
        left, rate_left = left - kg, rate_left - lg
    count(res, live[-1], left, rng)
    res["stall_ns"] += spin_wait(rng, k, w, x)
