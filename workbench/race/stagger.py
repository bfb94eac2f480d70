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

import numpy as np

from workbench.base.errors import ConfigError, check_range

__all__ = ["one_trap_model", "simulate_calls", "spin_staggered"]

_NS = 1e-9


def _check(rates_hz, write_ns, window_ns):
    lam = np.asarray(rates_hz, dtype=float) * _NS
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ConfigError("rates_hz: expected a non-empty list of finite rates >= 0 (calls/s, write order)")
    w = check_range("write_ns", write_ns, 0, 1e12)
    k = lam.size
    e = check_range("window_ns", window_ns, 2 * k * w, 1e15)
    return lam, float(w), float(e)


def _trunc_mean(rate, length):
    """E[u | u < length] for u ~ Exp(rate) (ns)."""
    x = rate * length
    if x < 1e-8:
        return length / 2
    return 1 / rate - length * math.exp(-x) / -math.expm1(-x)


def spin_staggered(rates_hz, write_ns: float, window_ns: float, kinds=None) -> dict:
    """Expected traps and spinning wait of one CPU over one batch, re-traps included.

    *rates_hz*: the CPU's call rate (calls/s) of each site, in write order.
    *write_ns*: one text write (ns). *window_ns*: ``E = 2 K w + R1 + R2``
    (ns), the armed time of every site. *kinds* (optional, one label per
    site) splits the traps by kind. Returns ``traps``, ``first`` (the
    first trap: ``1 - P(no trap)``), ``retraps`` (= traps - first),
    ``wait_ns`` and ``by_kind``. Raises :class:`ConfigError` for bad input.
    """
    lam, w, e = _check(rates_hz, write_ns, window_ns)
    k = lam.size
    labels = sorted(set(kinds)) if kinds is not None else []
    if kinds is not None and len(kinds) != k:
        raise ConfigError(f"kinds: {len(kinds)} labels for {k} sites")
    ind = {lab: np.array([kd == lab for kd in kinds], float) for lab in labels}
    pos = np.arange(k) * w  # j w
    # -- disarming phase: backward over m = K-1 .. 0 ----------------------------------
    F, G = np.zeros(k + 1), np.zeros(k + 1)
    Fk = {lab: np.zeros(k + 1) for lab in labels}
    s1 = s2 = s3 = 0.0  # sums over j > m of l_j F(j), l_j j w, l_j G(j)
    sk = {lab: 0.0 for lab in labels}  # sum_{j>m} l_j [kind j]
    s1k = {lab: 0.0 for lab in labels}  # sum_{j>m} l_j F_k(j)
    tail = 0.0  # Lambda of sites m+1..K-1
    for m in range(k - 1, -1, -1):
        if tail > 0:
            p = -math.expm1(-tail * w)
            u = _trunc_mean(tail, w)
            F[m] = p * (1 + s1 / tail) + (1 - p) * F[m + 1]
            G[m] = p * ((s2 + s3) / tail - m * w - u) + (1 - p) * G[m + 1]
            for lab in labels:
                Fk[lab][m] = p * (sk[lab] + s1k[lab]) / tail + (1 - p) * Fk[lab][m + 1]
        # site m joins the "j > m - 1" sums
        s1 += lam[m] * F[m]
        s2 += lam[m] * pos[m]
        s3 += lam[m] * G[m]
        for lab in labels:
            sk[lab] += lam[m] * ind[lab][m]
            s1k[lab] += lam[m] * Fk[lab][m]
        tail += lam[m]
    # -- arming phase [a w, (a+1) w) and full phase [K w, E) ------------------------------
    cum = np.cumsum(lam)  # Lambda of sites 0..a
    lf, lg = np.cumsum(lam * F[:k]), np.cumsum(lam * (pos + G[:k]))
    lfk = {lab: np.cumsum(lam * Fk[lab][:k]) for lab in labels}
    lk = {lab: np.cumsum(lam * ind[lab]) for lab in labels}
    free = np.exp(-w * np.concatenate([[0.0], np.cumsum(cum)]))  # P(no trap before interval a)
    traps = wait = first = 0.0
    by_kind = dict.fromkeys(labels, 0.0)
    for a in np.flatnonzero(cum > 0):
        p = free[a] * -math.expm1(-cum[a] * w)
        first += p
        traps += p * (1 + lf[a] / cum[a])
        wait += p * (e - a * w - _trunc_mean(cum[a], w) + lg[a] / cum[a])
        for lab in labels:
            by_kind[lab] += p * (lk[lab][a] + lfk[lab][a]) / cum[a]
    total, m_len, pk = float(cum[-1]), e - k * w, float(free[k])
    q = -math.expm1(-total * m_len) if total > 0 else 0.0
    if q > 0:
        first += pk * q
        traps += pk * q * (1 + lf[-1] / total)
        wait += pk * q * (m_len - _trunc_mean(total, m_len) + lg[-1] / total)
        for lab in labels:
            by_kind[lab] += pk * q * (lk[lab][-1] + lfk[lab][-1]) / total
    traps += pk * (1 - q) * F[0]
    wait += pk * (1 - q) * G[0]
    # a CPU still free at E may make its first trap while the first bytes are written
    armed_c = float((cum[-1] - cum).sum()) * w  # sum over m of Lambda(sites > m) w
    first += pk * (1 - q) * -math.expm1(-armed_c)
    for lab in labels:
        by_kind[lab] += pk * (1 - q) * Fk[lab][0]
    return {"traps": traps, "first": first, "retraps": traps - first, "wait_ns": wait, "by_kind": by_kind}


def one_trap_model(rates_hz, write_ns: float, window_ns: float) -> dict:
    """The simulator's batched spin model for comparison: one window ``W = E`` shared by
    all sites, at most one trap per CPU (``1 - e^(-L W)``), wait ``W - (1 - e^(-L W)) / L``."""
    lam, w, e = _check(rates_hz, write_ns, window_ns)
    total = float(lam.sum())
    p = -math.expm1(-total * e)
    return {"traps": p, "wait_ns": e - p / total if total > 0 else 0.0}


def simulate_calls(rates_hz, write_ns: float, window_ns: float, cpus: int = 8, trials: int = 2000,
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
