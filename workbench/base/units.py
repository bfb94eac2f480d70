"""Human-readable time for output a person reads (tables, captions, the CLI).

Data files keep base units (nanoseconds, in columns named ``_ns``); only
text meant for a reader goes through :func:`human_ns`, which picks ns, µs,
ms or s so that at most three significant digits show (``4.31 s`` instead
of ``4.30787e+09`` ns). No kernel file is modelled here.
"""

from __future__ import annotations

import math

__all__ = ["NS", "human_count", "human_ns"]

#: one nanosecond in seconds (1e-9). Rates are per second and times in ns
#: throughout, so ``rate * NS * time_ns`` is an expected count of events.
NS = 1e-9

_STEPS = ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns"))


def human_ns(value: float, digits: int = 3) -> str:
    """*value* nanoseconds as text with a unit: ``4.31 s``, ``337 µs``, ``0 ns``, ``nan``."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0 ns"
    for div, unit in _STEPS:
        if abs(v) >= div:
            return f"{v / div:.{digits}g} {unit}"
    return f"{v:.{digits}g} ns"


def human_count(value: float, digits: int = 3) -> str:
    """A count or rate with at most *digits* significant digits and a k/M/G suffix: ``1.5k``, ``0.042``."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"
