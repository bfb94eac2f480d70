"""Latency model for patching kernel text on N CPUs, with anchored defaults.

What it models (the kernel code it stands for in brackets):

* a **write**: one ``text_poke`` of an int3 byte, of a tail, of a first
  byte, or of a whole instruction under stop_machine, costs ``write_ns``
  [``text_poke()`` in ``arch/x86/kernel/alternative.c``];
* an optional **prepare** step per site outside any armed window, e.g.
  validating the old bytes and queueing the site (``prepare_ns``, default 0)
  [``arch_jump_label_transform_queue``, ``ftrace_test_record``];
* a **sync round**: ``on_each_cpu(do_sync_core, NULL, 1)`` returns when the
  slowest CPU has run the IPI. Its latency is::

      R(N) = ipi_base_ns + max(D_1, ..., D_{N-1})

  where each of the N-1 other CPUs is, with probability ``irq_off_prob``,
  inside an interrupts-disabled section whose remaining length is
  exponential with mean ``irq_off_scale_ns`` (D_k = 0 otherwise). One CPU
  with interrupts off delays the whole round, so the round grows like
  ``irq_off_scale_ns * ln((N-1) * irq_off_prob)`` [``kernel/smp.c``];
* the **int3 handler**: ``handler_ns`` per trapped call when one site is in
  flight, ``handler_batch_ns`` when the handler searches a batch
  [``poke_int3_handler``];
* **stop_machine**: ``stop_machine_ns`` of fixed cost plus one rendezvous
  that waits for the slowest CPU like a sync round [``kernel/stop_machine.c``].

Anchors (docs/KERNEL.md §13). Daniel Bristot de Oliveira's
jump-label batching (lore ``cover.1560325897.git.bristot@redhat.com``; V3 at
lkml.org/lkml/2018/12/21/214), 24 CPUs, 56 sites: 57 ms per update with one
breakpoint protocol per site (168 rounds) and 1.4 ms batched (3 rounds); int3
handler 45 ns single and ~180 ns batched (published). The write cost and the
mean round on 24 CPUs are **derived** here by solving the two update times
(:func:`derive_write_and_round`): ``56 * (3w + 3R) = 57 ms`` and
``3 * 56 * w + 3R = 1.4 ms`` give R = 0.337 ms (docs/KERNEL.md §13's 57 ms / 168 = 0.34 ms
is the same figure without the writes) and w = 2.32 us. ``ipi_base_ns`` (5 us)
and ``irq_off_prob`` (0.1) are illustrative assumptions; ``irq_off_scale_ns``
is then calibrated so that a round on 24 CPUs averages the derived R.
``stop_machine_ns`` (2 ms) stands for "a few ms on an idle system" (Josh
Poimboeuf, 2014): an assumption inside a quoted range, not a measurement.

Every default can be overridden; :meth:`Timing.for_round` sets the
irq-off tail to another mean round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
import math

import numpy as np

from workbench.base.numeric import fdot
from workbench.base.errors import ConfigError, check_range

__all__ = [
    "BRISTOT",
    "Anchor",
    "Timing",
    "derive_write_and_round",
    "gamma_matched",
    "finite_range",
    "tail_max_moments",
    "EXACT_ROUNDS",
]

#: sums of at most this many sync rounds are drawn round by round; longer
#: sums (thousands of per-site rounds) from a gamma with the exact mean and
#: variance, where the central limit theorem has already done its work.
EXACT_ROUNDS = 24


@dataclass(frozen=True)
class Anchor:
    """A published measurement the model is checked against (docs/KERNEL.md §13)."""

    cpus: int
    sites: int
    ipis_per_site: int
    ipis_batched: int
    update_per_site_ns: float
    update_batched_ns: float
    handler_ns: float
    handler_batch_ns: float
    hits_ratio: float  # batched int3 hits / per-site int3 hits
    source: str = ""


#: Bristot's jump-label batching measurement (24-CPU Xeon, 56 sites).
BRISTOT = Anchor(
    cpus=24, sites=56, ipis_per_site=168, ipis_batched=3,
    update_per_site_ns=57e6, update_batched_ns=1.4e6,
    handler_ns=45.0, handler_batch_ns=180.0, hits_ratio=0.90,
    source="lore cover.1560325897.git.bristot@redhat.com; lkml.org/lkml/2018/12/21/214",
)


def derive_write_and_round(anchor: Anchor = BRISTOT) -> tuple[float, float]:
    """Return ``(write_ns, round_ns)`` solving the anchor's two update times.

    Per-site: ``K * (3w + 3R) = T_site``; batched: ``3Kw + 3R = T_batch``
    (K sites, three writes and three sync rounds per breakpoint protocol).
    Subtracting gives ``3R(K-1) = T_site - T_batch``.
    """
    k = anchor.sites
    round_ns = (anchor.update_per_site_ns - anchor.update_batched_ns) / (3 * (k - 1))
    write_ns = (anchor.update_batched_ns - 3 * round_ns) / (3 * k)
    return write_ns, round_ns


@lru_cache(maxsize=8192)
def tail_max_moments(n: int, p: float) -> tuple[float, float]:
    """First two moments of ``max(D_1..D_n)`` for unit irq-off scale.

    ``D_k`` is 0 with probability ``1-p`` and Exp(1) otherwise, so
    ``P(max <= t) = (1 - p e^-t)^n``. The mean is exact,
    ``sum_{j=1..n} (1 - (1-p)^j) / j`` (the harmonic number ``H_n`` when
    p = 1); the second moment ``2 * int t P(max > t) dt`` is integrated
    numerically (Simpson, relative error below 1e-9). Returns ``(0, 0)`` when
    n = 0 (one CPU: nobody to wait for) or p = 0.
    """
    n = int(n)
    p = float(p)
    if n <= 0 or p <= 0.0:
        return 0.0, 0.0
    j = np.arange(1, n + 1, dtype=float)
    q = 1.0 if p >= 1.0 else -np.expm1(j * math.log1p(-p))
    m1 = float(np.sum(q / j))
    t_max = math.log(max(n * p, 1.0)) + 60.0
    t = np.linspace(0.0, t_max, 2**15 + 1)
    # P(max > t), computed without cancellation for large n and small tails
    with np.errstate(divide="ignore"):  # p = 1 at t = 0: log1p(-1) = -inf, tail = 1
        tail = -np.expm1(n * np.log1p(-p * np.exp(-t)))
    w = np.ones_like(t)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    m2 = float(2.0 * fdot(w, t * tail) * (t[1] - t[0]) / 3.0)
    return m1, max(m2, m1 * m1)


def _default_scale(base_ns: float, prob: float, anchor: Anchor = BRISTOT) -> float:
    _, round_ns = derive_write_and_round(anchor)
    m1, _ = tail_max_moments(anchor.cpus - 1, prob)
    return (round_ns - base_ns) / m1


DEFAULT_IPI_BASE_NS = 5_000.0      # assumption: an IPI round on an idle box
DEFAULT_IRQ_OFF_PROB = 0.1         # assumption: share of time with IRQs off
DEFAULT_WRITE_NS = derive_write_and_round()[0]
DEFAULT_IRQ_OFF_SCALE_NS = _default_scale(DEFAULT_IPI_BASE_NS, DEFAULT_IRQ_OFF_PROB)


@dataclass(frozen=True)
class Timing:
    """Costs of writes, sync rounds, the int3 handler and stop_machine (ns).

    Raises :class:`ConfigError` for a negative cost or a probability outside
    [0, 1]. Frozen and hashable, so it can key caches.
    """

    write_ns: float = DEFAULT_WRITE_NS
    prepare_ns: float = 0.0
    ipi_base_ns: float = DEFAULT_IPI_BASE_NS
    irq_off_prob: float = DEFAULT_IRQ_OFF_PROB
    irq_off_scale_ns: float = DEFAULT_IRQ_OFF_SCALE_NS
    handler_ns: float = BRISTOT.handler_ns
    handler_batch_ns: float = BRISTOT.handler_batch_ns
    stop_machine_ns: float = 2e6

    def __post_init__(self) -> None:
        for name in ("write_ns", "prepare_ns", "ipi_base_ns", "irq_off_scale_ns",
                     "handler_ns", "handler_batch_ns", "stop_machine_ns"):
            object.__setattr__(self, name, finite_range(name, getattr(self, name), 0))
        object.__setattr__(self, "irq_off_prob", check_range("irq_off_prob", self.irq_off_prob, 0, 1))

    @classmethod
    def for_round(cls, sync_round_ns: float | None, cpus: int = BRISTOT.cpus, **overrides) -> "Timing":
        """The one way to set the sync round: Timing whose mean round on *cpus* CPUs is *sync_round_ns* ns.

        Both parts of a round, the IPI floor (``ipi_base_ns``) and the
        irq-off tail (``irq_off_scale_ns``), are scaled by one factor, so the
        shape of the round-latency model is kept and rounds on other CPU
        counts grow as the model says; writes are not scaled. *overrides*
        set other fields first (e.g. ``write_ns``, ``irq_off_prob``);
        ``None`` keeps the calibrated round (0.337 ms on 24 CPUs). Used
        alike by ``simulate``, the sweeps and the widgets. Raises
        :class:`ConfigError` for a non-positive or non-finite round.
        """
        base = cls(**overrides)
        if sync_round_ns is None:
            return base
        target = finite_range("sync_round_ns", sync_round_ns, 1e-3)
        cpus = int(check_range("cpus", cpus, 2, 65536, integer=True))  # 1 CPU has no round to scale
        f = target / base.round_moments(cpus)[0]
        return replace(base, ipi_base_ns=base.ipi_base_ns * f, irq_off_scale_ns=base.irq_off_scale_ns * f)

    def scaled(self, factor: float) -> Timing:
        """The same model with every write and sync cost multiplied by *factor*."""
        factor = finite_range("timing_scale", factor, 0)
        return replace(self, write_ns=self.write_ns * factor, prepare_ns=self.prepare_ns * factor,
                       ipi_base_ns=self.ipi_base_ns * factor,
                       irq_off_scale_ns=self.irq_off_scale_ns * factor)

    # -- sync rounds ---------------------------------------------------------

    @staticmethod
    def sends_round(cpus: int) -> bool:
        """Whether a sync round on *cpus* CPUs waits for anyone: with one CPU online
        ``run_sync()`` returns at once (arch/x86/kernel/ftrace.c v5.0-v5.5) and
        ``on_each_cpu()`` sends no IPI to its own CPU (kernel/smp.c), so a round is 0 ns."""
        return int(cpus) > 1

    def round_moments(self, cpus: int) -> tuple[float, float]:
        """Mean and variance (ns, ns^2) of one sync round on *cpus* CPUs.

        One CPU online: no round at all (:meth:`sends_round`), so 0.
        """
        if not self.sends_round(cpus):
            return 0.0, 0.0
        m1, m2 = tail_max_moments(int(cpus) - 1, self.irq_off_prob)
        s = self.irq_off_scale_ns
        return self.ipi_base_ns + s * m1, s * s * max(m2 - m1 * m1, 0.0)

    def draw_rounds(self, rng: np.random.Generator, cpus: int, size) -> np.ndarray:
        """Independent sync-round latencies (ns), array of shape *size*.

        Inverse CDF of the max of N-1 CPUs: one uniform per round, whatever N.
        """
        n, p, s = int(cpus) - 1, self.irq_off_prob, self.irq_off_scale_ns
        u = rng.random(size)
        if not self.sends_round(cpus):
            return np.zeros(size)
        if p <= 0.0 or s <= 0.0:
            return np.full(size, self.ipi_base_ns)
        # 1 - u**(1/n) without cancellation; a CPU-max at or below 0 is the
        # atom "every CPU had interrupts on"
        gap = -np.expm1(np.log(u) / n)
        with np.errstate(divide="ignore"):
            tail = math.log(p) - np.log(gap)
        return self.ipi_base_ns + s * np.maximum(tail, 0.0)

    def draw_round_sum(self, rng: np.random.Generator, cpus: int, count: int, size: int) -> np.ndarray:
        """Sum of *count* independent sync rounds per trial, shape ``(size,)``.

        Exact (round by round) for ``count <= EXACT_ROUNDS``; beyond that a
        gamma with the exact mean and variance of the sum.
        """
        count = int(count)
        if count <= 0:
            return np.zeros(size)
        if count <= EXACT_ROUNDS:
            return self.draw_rounds(rng, cpus, (size, count)).sum(axis=1)
        mean, var = self.round_moments(cpus)
        return gamma_matched(rng, count * mean, count * var, size)

    def stop_machine_moments(self, cpus: int) -> tuple[float, float]:
        """Mean and variance of stop_machine's fixed cost plus its rendezvous."""
        mean, var = self.round_moments(cpus)
        return self.stop_machine_ns + mean, var


def finite_range(name: str, value, lo: float | None = None, hi: float | None = None, *,
                 integer: bool = False) -> float:
    """:func:`check_range` that also refuses infinity (rates and costs must be finite)."""
    v = check_range(name, value, lo, hi, integer=integer)
    if not math.isfinite(v):
        raise ConfigError(f"{name}: {value!r} is not a finite number")
    return v


def gamma_matched(rng: np.random.Generator, mean, var, size: int) -> np.ndarray:
    """Draws with the given mean and variance: gamma, or constant if var is 0."""
    if var <= 0.0 or mean <= 0.0:
        return np.full(size, float(mean))
    return rng.gamma(mean * mean / var, var / mean, size)
