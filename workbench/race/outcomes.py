"""The per-trapped-call outcomes the emulator measured, as the race simulator reads them.

One row per (strategy, site kind, trap site) of an emulator outcome table,
averaged by trapped placements, with per-phase means for time weighting
(docs/RACE.md "Trap phases by time"); calls trapped on the patching CPU
itself come from their own table (``workbench.emulate.patching_cpu``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.base.errors import ConfigError, check_choice
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH
from workbench.emulate.scenario import check_scenario, load_scenario

__all__ = ["OUTCOME_METRICS", "PerCallOutcomes", "TRAP_SITES", "load_outcomes"]

#: where a call can trap: its own site, or a trampoline's patchable call
TRAP_SITES = ("fentry", "ftrace_call", "ftrace_regs_call")
#: metric <- outcome-table column (per-trapped-call mean)
OUTCOME_METRICS = {"violations": "violation", "dropped_tracer": "dropped_tracer",
                   "dropped_livepatch": "dropped_livepatch", "spurious": "spurious",
                   "crashes": "crash", "deadlocks": "deadlock"}


class PerCallOutcomes:
    """Per-trapped-call expected outcomes for one scenario, arch and kernel entry.

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

    def __init__(self, frame: pd.DataFrame, scenario: str, entry: str | None = None,
                 patching: pd.DataFrame | None = None, arch: str = "i386"):
        arch = check_choice("arch", arch, ARCHES)
        entry = check_choice("entry", ENTRIES_BY_ARCH[arch][-1] if entry is None else entry, ENTRIES_BY_ARCH[arch])
        self.scenario, self.entry, self.arch = scenario, entry, arch
        #: calls trapped on the patching CPU itself (an interrupt inside text_poke_bp(): the
        #: patch frozen in its phase; workbench.emulate.patching_cpu), or None: as any other CPU
        self.patching = None if patching is None or not len(patching) \
            else PerCallOutcomes(patching, scenario, entry, arch=arch)
        if "deadlock" not in frame.columns:  # a table from before deadlocks were recorded
            frame = frame.assign(deadlock=0.0)
        need = set(self.KEY) | set(self.COLUMNS) | {"trapped_placements"}
        if not need <= set(frame.columns):
            raise ConfigError(f"outcomes: table lacks columns {sorted(need - set(frame.columns))}")
        rows = frame
        # an i386 table has no arch column (its rows are as they always were)
        for col, val in (("scenario", scenario), ("entry", entry), ("arch", arch)):
            if col in rows.columns:
                rows = rows[rows[col] == val]
        if len(frame) and not len(rows):
            raise ConfigError(f"outcomes: table has no rows for scenario {scenario!r}, arch {arch!r}, "
                              f"entry {entry!r}")
        values = rows[list(self.COLUMNS)].to_numpy(float)
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ConfigError("outcomes: per-call means must be finite and >= 0")
        self._means, self._phases = {}, {}
        weights = rows["trapped_placements"].to_numpy(float)
        for key, idx in rows.groupby(list(self.KEY)).indices.items():
            w = weights[idx] if weights[idx].sum() > 0 else np.ones(len(idx))
            self._means[key] = np.average(values[idx], axis=0, weights=w)
        if "trap_phase" in rows.columns and len(rows):
            # the poke step a trap happened after: int3, sync1, tail, sync2, first
            step = rows["trap_phase"].astype(str).str.rsplit(":", n=1).str[-1]
            for key, idx in rows.assign(_step=step).groupby(list(self.KEY) + ["_step"]).indices.items():
                w = weights[idx] if weights[idx].sum() > 0 else np.ones(len(idx))
                self._phases.setdefault(key[:-1], {})[key[-1]] = np.average(values[idx], axis=0, weights=w)

    def on_patching_cpu(self) -> "PerCallOutcomes":
        """The outcomes of a call trapped on the patching CPU (these, if none were measured)."""
        return self if self.patching is None else self.patching

    @classmethod
    def empty(cls, scenario: str, entry: str | None = None, arch: str = "i386") -> PerCallOutcomes:
        """No measured outcomes: every trapped call counts zero (counting only)."""
        cols = ("scenario", "entry", "trapped_placements") + cls.KEY + cls.COLUMNS
        return cls(pd.DataFrame(columns=cols), scenario, entry, arch=arch)

    def per_call(self, strategy: str, site_kind: str, trap_site: str,
                 phase_weights: dict[str, float] | None = None) -> dict[str, float]:
        """Mapping metric -> expected count per trapped call (0 where no row).

        With *phase_weights* (poke step -> probability that a trapped
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
        return {m: float(means[self.COLUMNS.index(c)]) for m, c in OUTCOME_METRICS.items()}

    def has(self, strategy: str, site_kind: str, trap_site: str) -> bool:
        """Whether the table has a row for this key."""
        return (strategy, site_kind, trap_site) in self._means


def load_outcomes(scenario: str, entry: str | None = None, arch: str = "i386") -> PerCallOutcomes:
    """Run/load the *arch* emulator's outcome table (cached by code version there).

    *entry* defaults to the arch's latest (:data:`ENTRIES_BY_ARCH`); a
    scenario the arch cannot have, or an entry it lacks, raises ConfigError
    before any work.
    """
    from workbench.emulate.explore import load_outcome_table  # start-up: Unicorn, only when a table is read
    from workbench.emulate.patching_cpu import load_patching_cpu_table  # start-up: as above
    check_scenario(scenario)
    arch = check_choice("arch", arch, ARCHES)
    load_scenario(scenario).check_arch(arch)
    entry = check_choice("entry", ENTRIES_BY_ARCH[arch][-1] if entry is None else entry, ENTRIES_BY_ARCH[arch])
    return PerCallOutcomes(load_outcome_table(scenario, entry, arch=arch), scenario, entry,
                           load_patching_cpu_table(scenario, entry, arch=arch), arch=arch)
