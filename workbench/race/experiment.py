"""The race simulator as a sweep's experiment: :class:`RaceExperiment` (:data:`RACE`) and its grids.

:class:`RaceExperiment` runs :mod:`workbench.race.simulator` at one point of
:data:`RACE_PARAMETERS` (a :class:`workbench.sweep.experiment.Experiment`), with the
patch timing set by the mean sync round (:meth:`workbench.race.timing.Timing.for_round`);
:func:`race_grid` builds a grid of its points.

Bad input (an unknown parameter, a value the experiment refuses) raises
:class:`workbench.base.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from workbench.base.errors import ConfigError, check_choice
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH, METRICS, check_param
from workbench.emulate.scenario import load_scenario
from workbench.race.outcomes import PerCallOutcomes
from workbench.race.parameters import RACE_PARAMETERS
from workbench.race.plan import PLANS
from workbench.race.simulator import RaceConfig, simulate
from workbench.race.timing import Timing
from workbench.race.workload import DEFAULT_HOT, Workload
from workbench.sweep.engine import Grid
from workbench.sweep.experiment import Experiment

__all__ = ["RACE", "RACE_PARAMETERS", "REFERENCE_CPUS", "RaceExperiment", "long_metrics", "race_grid"]

#: the CPU count at which ``sync_round_ns`` is defined: Bristot's 24-CPU machine,
#: where the default timing was calibrated (workbench.race.timing)
REFERENCE_CPUS = 24


_OUTCOME_METRICS = ("violations", "dropped_tracer", "dropped_livepatch", "spurious", "crashes")


def _timing(p: dict) -> Timing:
    """The :class:`~workbench.race.timing.Timing` of a point: the one timing model."""
    kw = {k: p[k] for k in ("write_ns", "irq_off_prob", "stop_machine_ns") if p.get(k) is not None}
    return Timing.for_round(p.get("sync_round_ns"), REFERENCE_CPUS, **kw)


class RaceExperiment(Experiment):
    """The race simulator at one configuration (:func:`workbench.race.simulator.simulate`).

    Parameters are :data:`RACE_PARAMETERS`. Each row holds the
    configuration (as :func:`workbench.race.simulator.simulate` reports it, plus
    ``sync_round_ns`` and ``outcomes``) and, per metric, ``_mean``, ``_se``,
    ``_lo``/``_hi`` (95% interval of the mean) and ``_cf`` (closed form).
    With ``outcomes="none"`` the outcome metrics (violations, drops,
    spurious, crashes) are NaN: only trapped calls, stall, windows, patch
    time and IPIs are counted. The emulator's outcome tables are loaded once
    per (scenario, arch, entry) by :meth:`prepare`. ``arch`` picks the
    emulated kernel whose plan, routing and outcome tables are used; a
    scenario or entry that arch cannot have is refused in one line.
    """

    name = "race"
    parameters = RACE_PARAMETERS
    #: the parameter names a point's random stream is hashed under: the published numbers were drawn
    #: when ``batching`` was called ``protocol``, and a point's stream stays what it was
    stream_names = {"batching": "protocol"}

    def normalize(self, params: dict) -> dict:
        p = super().normalize(params)
        check_choice("outcomes", p["outcomes"], ("emulator", "none"))
        arch = check_choice("arch", p["arch"], ARCHES)
        load_scenario(p["scenario"]).check_arch(arch)  # a scenario the arch cannot have: refused here
        entries = ENTRIES_BY_ARCH[arch]
        p["entry"] = check_choice("entry", entries[-1] if p["entry"] is None else p["entry"], entries)
        if not isinstance(p["trampolines"], bool):
            raise ConfigError(f"trampolines: expected true or false, got {p['trampolines']!r}")
        # every rate, count, duration and size in its one documented range, before any work
        for name in ("trials", "cpus", "tail_functions", "tail_rate", "zipf_s", "dispersion"):
            p[name] = check_param(name, p[name])
        for name in ("sync_round_ns", "write_ns", "irq_off_prob", "stop_machine_ns", "batch_max"):
            if p[name] is not None:
                p[name] = check_param(name, p[name])
        timing = _timing(p)
        hot = DEFAULT_HOT if p["hot"] is None else p["hot"]
        if isinstance(hot, dict):
            hot = tuple(hot.items())
        try:
            hot = tuple((n, check_param("hot_rate", r, label=f"hot[{n}]")) for n, r in hot)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"hot: expected a mapping of function name to calls/s, got {p['hot']!r}") from None
        workload = Workload(hot=hot, tail_functions=p["tail_functions"], tail_rate=p["tail_rate"],
                            zipf_s=p["zipf_s"], dispersion=p["dispersion"])
        cfg = RaceConfig(p["scenario"], p["strategy"], p["batching"], p["cpus"], workload, timing,
                         trampolines=p["trampolines"], batch_max=p["batch_max"], arch=arch)
        p.update(batching=cfg.batching, batch_max=cfg.batch_max, cpus=cfg.cpus, hot=dict(workload.hot),
                 tail_functions=workload.tail_functions, tail_rate=workload.tail_rate,
                 zipf_s=workload.zipf_s, dispersion=workload.dispersion,
                 sync_round_ns=float(timing.round_moments(REFERENCE_CPUS)[0]),
                 write_ns=timing.write_ns, irq_off_prob=timing.irq_off_prob,
                 stop_machine_ns=timing.stop_machine_ns)
        return p

    def config(self, p: dict) -> RaceConfig:
        """The :class:`workbench.race.simulator.RaceConfig` of a normalised point."""
        timing = _timing(p)
        workload = Workload(hot=tuple(p["hot"].items()), tail_functions=p["tail_functions"],
                            tail_rate=p["tail_rate"], zipf_s=p["zipf_s"], dispersion=p["dispersion"])
        return RaceConfig(p["scenario"], p["strategy"], p["batching"], p["cpus"], workload, timing,
                          trampolines=p["trampolines"], batch_max=p["batch_max"], arch=p["arch"])

    @staticmethod
    def _needs_table(p: dict) -> bool:
        return p["outcomes"] == "emulator" and p["strategy"] != "stop_machine"

    def prepare(self, points: list[dict], progress: bool = True) -> dict[str, pd.DataFrame]:
        """The emulator's outcome table of every (scenario, arch, entry) the points need."""
        from workbench.emulate.explore import load_outcome_table  # start-up: Unicorn; sweep workers only simulate

        PLANS.refresh()  # a scenario or the assembly edited since the plans were derived
        from workbench.emulate.patching_cpu import load_patching_cpu_table  # start-up: as above

        keys = sorted({(p["scenario"], p["arch"], p["entry"]) for p in points if self._needs_table(p)})
        out = {f"{s}/{a}/{e}": load_outcome_table(s, e, progress=progress, arch=a) for s, a, e in keys}
        out.update({f"{s}/{a}/{e}/patching_cpu": load_patching_cpu_table(s, e, arch=a) for s, a, e in keys})
        return out

    def run(self, p: dict, seed: int, stream: int, context: dict[str, pd.DataFrame]) -> dict:
        if self._needs_table(p):
            key = f"{p['scenario']}/{p['arch']}/{p['entry']}"
            outcomes = PerCallOutcomes(context[key], p["scenario"], p["entry"], context.get(f"{key}/patching_cpu"),
                                       arch=p["arch"])
        else:  # nothing traps under stop_machine; "none" counts traps only
            outcomes = PerCallOutcomes.empty(p["scenario"], p["entry"], arch=p["arch"])
        row = simulate(self.config(p), outcomes, p["trials"], seed, stream=stream).iloc[0].to_dict()
        if p["outcomes"] == "none":
            for m in _OUTCOME_METRICS:
                for suffix in ("_mean", "_se", "_lo", "_hi", "_cf"):
                    row[m + suffix] = math.nan
        row.pop("hot_rates", None)  # the "hot" parameter column says the same
        return row

    def columns(self, p: dict) -> dict:
        cols = super().columns(p)
        cols["hot"] = ",".join(f"{k}={v:g}" for k, v in p["hot"].items())
        return cols


#: the race simulator as a sweep experiment
RACE = RaceExperiment()


def race_grid(**params) -> Grid:
    """A :class:`Grid` of race-simulator points: each keyword is a value or a list.

    Names are those of :data:`RACE_PARAMETERS`. Raises :class:`ConfigError`
    at once for an unknown name or an empty range; values are checked when
    the sweep starts, before any work.
    """
    for name in params:
        if name not in RACE_PARAMETERS:
            raise ConfigError(f"{name}: unknown sweep parameter for race; choose from "
                              + ", ".join(RACE_PARAMETERS))
    return Grid(params, experiment=RACE)


def long_metrics(frame: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Race-sweep results in long form: one row per (point, metric).

    Columns: the configuration columns, ``metric``, ``mean``, ``se``,
    ``lo``, ``hi``, ``cf``.
    """
    metrics = list(metrics or METRICS)
    stat_cols = {f"{m}_{s}" for m in METRICS for s in ("mean", "se", "lo", "hi", "cf")}
    ids = [c for c in frame.columns if c not in stat_cols]
    parts = []
    for m in metrics:
        part = frame[ids].copy()
        part["metric"] = m
        for s in ("mean", "se", "lo", "hi", "cf"):
            part[s] = frame[f"{m}_{s}"].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
