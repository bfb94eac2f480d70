"""The race simulator's workload: per-CPU call rates of the traced functions.

Named hot functions (``do_IRQ``, ``__migrate_task``, ``schedule``) plus a
tail of M ordinary functions whose rates follow a Zipf profile; the sites of
one kind are summarised as their busiest ``EXACT_SITES`` rates and the sums
of the rest, which is all the race simulator's arithmetic needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from workbench.base.numeric import fdot
from workbench.base.errors import ConfigError, check_range
from workbench.race.timing import finite_range

__all__ = ["DEFAULT_HOT", "EXACT_SITES", "LIVEPATCHED", "SITE_KINDS", "Sites", "Workload", "site_summary"]

#: the busiest sites of a kind whose per-site windows are drawn one by one
EXACT_SITES = 16

#: the kinds of call site the race tells apart (docs/RACE.md)
SITE_KINDS = ("livepatched", "ordinary")
#: functions whose sites are live patched in every scenario (docs/KERNEL.md §12)
LIVEPATCHED = ("do_IRQ", "__migrate_task")


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

    def __post_init__(self) -> None:
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
def _zipf_profile(m: int, s: float) -> tuple[np.ndarray, float]:
    """Top ``EXACT_SITES`` normalised Zipf weights and the sum of all squares."""
    w = np.arange(1, m + 1, dtype=float) ** -s
    w /= w.sum()
    return w[:EXACT_SITES].copy(), fdot(w, w)


@dataclass
class Sites:
    """Sites of one kind, per CPU: the busiest exactly, the rest as sums.

    ``count`` sites in all; ``top`` the call rates (calls/s) of the busiest
    :data:`EXACT_SITES`; ``rest_total`` the summed rate (calls/s) and
    ``rest_sumsq`` the summed squared rate ((calls/s)^2) of the others;
    :attr:`total` the kind's whole rate (calls/s).
    """

    count: int
    top: np.ndarray
    rest_total: float
    rest_sumsq: float

    @property
    def total(self) -> float:
        return float(self.top.sum()) + self.rest_total


@lru_cache(maxsize=256)
def site_summary(workload: Workload) -> dict[str, Sites]:
    """*workload*'s sites by kind: ``{"livepatched": Sites, "ordinary": Sites}``.

    Rates are per CPU in calls/s (multiply by :data:`workbench.base.units.NS`
    and a time in ns for an expected count). Cached per workload.
    """
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
    tail_rest_sq = tail_sumsq - fdot(tail_top, tail_top)
    return {
        "livepatched": Sites(len(lp), np.sort(lp)[::-1], 0.0, 0.0),
        "ordinary": Sites(len(other) + m, top, float(rest.sum()) + max(tail_rest, 0.0),
                           fdot(rest, rest) + max(tail_rest_sq, 0.0)),
    }
