"""``spin`` under the batched breakpoint protocol: staggered windows and re-traps.

Models the order of writes of ``text_poke_bp_batch()``
(``arch/x86/kernel/alternative.c``, v5.6; ftrace's own batched
``ftrace_replace_code()`` in ``arch/x86/kernel/ftrace.c`` before it): the
int3 bytes of the K sites are written one after the other, a sync, the
tails, a sync, then the first bytes in the same order. Site i (write order,
0-based) is armed from its int3 write, at ``i w``, until its first-byte
write, at ``E + i w`` with ``E = 2 K w + R1 + R2``. A CPU that traps on site
j under ``spin`` returns to the int3 until ``E + j w``; released there it
calls on, and traps again on any site k > j that is still armed. The race
simulator's batched spin model (one trap per CPU per batch,
:mod:`workbench.race.spin`) leaves these re-traps out; this module computes
them exactly for given per-site rates in write order, and checks itself
against a per-call simulation (:func:`simulate_calls`).

Closed form (:func:`spin_staggered`), per CPU, calls Poisson with per-site
rates ``l_i``. The armed set is piecewise constant between writes:

* arming, ``[a w, (a+1) w)``: sites ``0..a``;
* full, ``[K w, E)``: all K sites;
* disarming, ``[E + m w, E + (m+1) w)``: sites ``m+1..K-1``.

A trap on site j releases the CPU at the start of disarming interval j, so
with ``F(m)`` (``G(m)``) the expected further traps (wait, ns) of a CPU
free at the start of disarming interval m, a backward recursion over m
gives F and G, and the arming and full phases add the first trap. Every
function here is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from workbench.base.errors import ConfigError, check_range
from workbench.base.units import NS

__all__ = ["one_trap_model", "simulate_calls", "spin_staggered", "stagger_eval", "stagger_tables"]


def _check(rates_hz, write_ns: float, window_ns) -> None:
    lam = np.asarray(rates_hz, dtype=float) * NS
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ConfigError("rates_hz: expected a non-empty list of finite rates >= 0 (calls/s, write order)")
    w = check_range("write_ns", write_ns, 0, 1e12)
    k = lam.size
    e = check_range("window_ns", window_ns, 2 * k * w, 1e15)
    return lam, float(w), float(e)


def _trunc_mean(rate: np.ndarray, length: np.ndarray) -> np.ndarray:
    """E[u | u < length] for u ~ Exp(rate) (ns)."""
    x = rate * length
    if x < 1e-8:
        return length / 2
    return 1 / rate - length * math.exp(-x) / -math.expm1(-x)


def stagger_tables(rates_hz: np.ndarray, write_ns: float, kinds: Sequence[str] | None = None) -> dict:
    """The parts of :func:`spin_staggered` that do not depend on the window ``E``.

    Returns a dict of arrays and constants for :func:`stagger_eval`; the
    disarming phase's recursion (a Python loop over the K sites, about
    40 ms per 1,000 sites... 1.7 s for 40,003) is done here once.
    """
    lam = np.asarray(rates_hz, dtype=float) * NS
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ConfigError("rates_hz: expected a non-empty list of finite rates >= 0 (calls/s, write order)")
    w = float(check_range("write_ns", write_ns, 0, 1e12))
    k = lam.size
    labels = sorted(set(kinds)) if kinds is not None else []
    if kinds is not None and len(kinds) != k:
        raise ConfigError(f"kinds: {len(kinds)} labels for {k} sites")
    ind = {lab: np.array([kd == lab for kd in kinds], float) for lab in labels}
    pos = np.arange(k) * w  # j w
    # -- disarming phase: backward over m = K-1 .. 0 ----------------------------------
    F, G = np.zeros(k + 1), np.zeros(k + 1)
    Fk = {lab: np.zeros(k + 1) for lab in labels}
    lam_l, pos_l = lam.tolist(), pos.tolist()
    ind_l = {lab: ind[lab].tolist() for lab in labels}
    s1 = s2 = s3 = 0.0  # sums over j > m of l_j F(j), l_j j w, l_j G(j)
    sk = dict.fromkeys(labels, 0.0)  # sum_{j>m} l_j [kind j]
    s1k = dict.fromkeys(labels, 0.0)  # sum_{j>m} l_j F_k(j)
    tail = 0.0  # Lambda of sites m+1..K-1
    f_next = g_next = 0.0
    fk_next = dict.fromkeys(labels, 0.0)
    for m in range(k - 1, -1, -1):
        if tail > 0:
            p = -math.expm1(-tail * w)
            u = _trunc_mean(tail, w)
            f_m = p * (1 + s1 / tail) + (1 - p) * f_next
            g_m = p * ((s2 + s3) / tail - m * w - u) + (1 - p) * g_next
            for lab in labels:
                fk_next[lab] = p * (sk[lab] + s1k[lab]) / tail + (1 - p) * fk_next[lab]
                Fk[lab][m] = fk_next[lab]
        else:
            f_m = g_m = 0.0
        F[m], G[m] = f_m, g_m
        f_next, g_next = f_m, g_m
        lm = lam_l[m]
        s1 += lm * f_m
        s2 += lm * pos_l[m]
        s3 += lm * g_m
        for lab in labels:
            sk[lab] += lm * ind_l[lab][m]
            s1k[lab] += lm * Fk[lab][m]
        tail += lm
    # -- arming phase [a w, (a+1) w): no dependence on E but through the wait's E ---------
    cum = np.cumsum(lam)  # Lambda of sites 0..a
    free = np.exp(-w * np.concatenate([[0.0], np.cumsum(cum)]))  # P(no trap before interval a)
    live = cum > 0
    p = np.where(live, free[:-1] * -np.expm1(-cum * w), 0.0)
    safe = np.where(live, cum, 1.0)
    u = np.array([_trunc_mean(c, w) if c > 0 else 0.0 for c in cum]) if k <= 4096 else \
        np.where(cum * w < 1e-8, w / 2, 1 / safe - w * np.exp(-cum * w) / np.where(live, -np.expm1(-cum * w), 1.0))
    lf, lg = np.cumsum(lam * F[:k]), np.cumsum(lam * (pos + G[:k]))
    a_idx = np.arange(k)
    total = float(cum[-1])
    out = {
        "k": k, "w": w, "total": total, "labels": labels, "F0": float(F[0]), "G0": float(G[0]),
        "lf": float(lf[-1]), "lg": float(lg[-1]),
        "a_first": float(p.sum()), "a_traps": float((p * (1 + lf / safe)).sum()),
        # the arming phase's wait is a_wait0 + a_first * E
        "a_wait0": float((p * (-a_idx * w - u + lg / safe)).sum()),
        "pk": float(free[k]), "armed_c": float((total - cum).sum()) * w,
        "kind": {},
    }
    for lab in labels:
        lk, lfk = np.cumsum(lam * ind[lab]), np.cumsum(lam * Fk[lab][:k])
        out["kind"][lab] = {"a": float((p * (lk + lfk) / safe).sum()), "l": float(lk[-1]),
                            "lf": float(lfk[-1]), "F0": float(Fk[lab][0])}
    return out


def stagger_eval(tab: dict, window_ns: float | np.ndarray) -> dict:
    """:func:`spin_staggered`'s expectations at window(s) *window_ns* (scalar or array, ns)."""
    e = np.asarray(window_ns, dtype=float)
    k, w, total, pk = tab["k"], tab["w"], tab["total"], tab["pk"]
    m_len = np.maximum(e - k * w, 0.0)
    if total > 0:
        x = total * m_len
        q = -np.expm1(-x)
        safe_q = np.where(q > 0, q, 1.0)
        u_b = np.where(x < 1e-8, m_len / 2, 1 / total - m_len * np.exp(-x) / safe_q)
        share_f, share_g = tab["lf"] / total, tab["lg"] / total
    else:
        q = u_b = np.zeros_like(e)
        share_f = share_g = 0.0
    traps = tab["a_traps"] + pk * q * (1 + share_f) + pk * (1 - q) * tab["F0"]
    first = tab["a_first"] + pk * q + pk * (1 - q) * -math.expm1(-tab["armed_c"])
    wait = tab["a_wait0"] + tab["a_first"] * e + pk * q * (m_len - u_b + share_g) + pk * (1 - q) * tab["G0"]
    by_kind = {}
    for lab, kt in tab["kind"].items():
        b = (kt["l"] + kt["lf"]) / total if total > 0 else 0.0
        by_kind[lab] = kt["a"] + pk * q * b + pk * (1 - q) * kt["F0"]
    return {"traps": traps, "first": first, "retraps": traps - first, "wait_ns": wait, "by_kind": by_kind}


def spin_staggered(rates_hz: np.ndarray, write_ns: float, window_ns: float,
                   kinds: Sequence[str] | None = None) -> dict:
    """Expected traps and spinning wait of one CPU over one batch, re-traps included.

    *rates_hz*: the CPU's call rate (calls/s) of each site, in write order.
    *write_ns*: one text write (ns). *window_ns*: ``E = 2 K w + R1 + R2``
    (ns), the armed time of every site. *kinds* (optional, one label per
    site) splits the traps by kind. Returns ``traps``, ``first`` (the
    probability of at least one trap), ``retraps`` (= traps - first),
    ``wait_ns`` and ``by_kind``. Raises :class:`ConfigError` for bad input.
    """
    lam, w, e = _check(rates_hz, write_ns, window_ns)
    r = stagger_eval(stagger_tables(rates_hz, write_ns, kinds), e)
    return {"traps": float(r["traps"]), "first": float(r["first"]), "retraps": float(r["retraps"]),
            "wait_ns": float(r["wait_ns"]), "by_kind": {k: float(v) for k, v in r["by_kind"].items()}}


def one_trap_model(rates_hz: np.ndarray, write_ns: float, window_ns: float) -> dict:
    """The simulator's batched spin model for comparison: one window ``W = E`` shared by
    all sites, at most one trap per CPU (``1 - e^(-L W)``), wait ``W - (1 - e^(-L W)) / L``."""
    lam, w, e = _check(rates_hz, write_ns, window_ns)
    total = float(lam.sum())
    p = -math.expm1(-total * e)
    return {"traps": p, "wait_ns": e - p / total if total > 0 else 0.0}


def simulate_calls(rates_hz: np.ndarray, write_ns: float, window_ns: float, cpus: int = 8, trials: int = 2000,
                   seed: int = 0) -> dict:
    """An independent per-call simulation of spin over one batch (the check of :func:`spin_staggered`).

    Every CPU of every trial calls sites (Poisson, *rates_hz* in write
    order) from time 0; a call to a site inside its window ``[i w, E + i w)``
    traps and spins until ``E + i w``. Returns per-CPU means and standard
    errors of ``traps`` and ``wait_ns`` over ``cpus * trials`` independent
    CPUs. Same arguments and seed, same numbers.
    """
    lam, w, e = _check(rates_hz, write_ns, window_ns)
    cpus = int(check_range("cpus", cpus, 1, 65536, integer=True))
    trials = int(check_range("trials", trials, 2, 10**7, integer=True))
    total = float(lam.sum())
    n = cpus * trials
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    traps, wait = np.zeros(n), np.zeros(n)
    if total <= 0:
        return {"traps": 0.0, "traps_se": 0.0, "wait_ns": 0.0, "wait_ns_se": 0.0}
    cdf = np.cumsum(lam) / total
    end = e + (lam.size - 1) * w  # the last site's first-byte write
    t = np.zeros(n)
    live = np.arange(n)
    while live.size:
        t[live] += rng.exponential(1 / total, live.size)
        live = live[t[live] < end]
        site = np.minimum(np.searchsorted(cdf, rng.random(live.size), side="right"), lam.size - 1)
        lo, hi = site * w, e + site * w
        hit = (t[live] >= lo) & (t[live] < hi)
        idx = live[hit]
        traps[idx] += 1
        wait[idx] += hi[hit] - t[idx]
        t[idx] = hi[hit]
    return {"traps": float(traps.mean()), "traps_se": float(traps.std(ddof=1) / math.sqrt(n)),
            "wait_ns": float(wait.mean()), "wait_ns_se": float(wait.std(ddof=1) / math.sqrt(n))}
