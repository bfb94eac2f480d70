"""Exhaustive model checking of many configurations as sweep work items.

Models ``arch/x86/kernel/alternative.c``'s patching protocol against k
calling CPUs through :mod:`workbench.emulate.mc.check`: each (scenario,
strategy, entry, protocol, calls) configuration is one point of a sweep
(:func:`workbench.sweep.engine.sweep`), so it runs serially, in local
processes or on Dask with the same result, and is cached atomically when it
finishes: a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from workbench.base.errors import ConfigError, check_range
from workbench.emulate.mc.check import bad_outcome, check, default_calls, outcome_rows
from workbench.emulate.mc.schedule import outcome_text, save_schedule
from workbench.emulate.mc.system import MAX_CALLING_CPUS, McConfig
from workbench.sweep.engine import sweep
from workbench.sweep.experiment import Experiment

__all__ = ["MC", "McExperiment", "check_all", "write_counterexamples"]


class McExperiment(Experiment):
    """One configuration's exhaustive exploration as a sweep point (a work item)."""

    name = "mc"
    parameters = {"scenario": "seed", "strategy": "emulate_new", "entry": "v5.3", "protocol": None,
                  "calls": None, "handler": "strategy", "coherent_fetch": False, "cpus": 2, "items": None}

    def normalize(self, params: dict) -> dict:
        p = super().normalize(params)
        k = int(check_range("cpus", p["cpus"], 1, MAX_CALLING_CPUS, integer=True))
        calls = p["calls"] or default_calls(k, p["scenario"])
        p["calls"] = [list(c) for c in calls]
        p["items"] = None if p["items"] is None else list(p["items"])
        p["cpus"] = len(calls)
        cfg = self.config(p)
        p["protocol"] = cfg.protocol
        return p

    @staticmethod
    def config(p: dict) -> McConfig:
        return McConfig(p["scenario"], p["strategy"], p["entry"], p["protocol"],
                        tuple(tuple(c) for c in p["calls"]), p["handler"], bool(p["coherent_fetch"]),
                        items=None if p.get("items") is None else tuple(p["items"])).checked()

    def prepare(self, points: list[dict], progress: bool = True):
        """Whether an exploration run in this process shows its live bar."""
        return {"progress": progress}

    def run(self, params, seed, stream, context):
        cfg = self.config(params)
        # a live bar in the coordinating process only (a worker's would interleave with others')
        show = bool(context and context.get("progress")) and multiprocessing.parent_process() is None
        with tqdm(desc=f"{cfg.strategy} {cfg.entry} {cfg.protocol}", unit=" states", disable=not show,
                  leave=False, file=sys.stderr, mininterval=0.5) as bar:
            def progress(stats):  # each complete execution: states explored, pruned branches
                bar.update(stats.states - bar.n)
                bar.set_postfix(executions=stats.executions, pruned=stats.blocked, refresh=False)

            res = check(cfg, progress=progress)
        rows = outcome_rows(res)
        for r in rows:
            r.update({f"mc_{k}": v for k, v in res["stats"].items()})
            key = _key(res, r["outcome"])
            r["schedule"] = json.dumps(res["outcomes"][key]["schedule"])
            r["outcome_text"] = outcome_text(key)
            r["bad"] = bad_outcome(key)
        return rows


def _key(res, oid):
    return sorted(res["outcomes"], key=outcome_text)[oid]


#: the experiment the sweep engine runs for :func:`check_all`
MC = McExperiment()


def write_counterexamples(frame: pd.DataFrame, out_dir) -> list[str]:
    """Write one counterexample file per bad outcome of a :func:`check_all` frame; their paths,
    fewest context switches first."""
    files = []
    bad = frame[frame["bad"]].drop_duplicates(["strategy", "entry", "protocol", "handler", "coherent_fetch",
                                               "calls", "items", "outcome"]).sort_values(
        ["switches", "strategy", "entry", "outcome"], kind="stable")
    for n, r in enumerate(bad.itertuples(index=False)):
        p = {k: getattr(r, k) for k in McExperiment.parameters}
        for k in ("calls", "items"):
            if isinstance(p[k], str):
                p[k] = json.loads(p[k])
        cfg = McExperiment.config(p)
        path = Path(out_dir) / f"cex_{n:03d}_{cfg.strategy}_{cfg.entry}_{cfg.protocol}_{cfg.handler}.json"
        files.append(str(save_schedule(path, cfg, json.loads(r.schedule), r.outcome_text,
                                       note=f"{r.switches} context switches")))
    return files


def check_all(points: list[dict], backend: str = "serial", jobs=None, scheduler=None, client=None,
              cache: bool = True, cache_root=None, progress: bool = True) -> pd.DataFrame:
    """Explore every configuration in *points* (dicts of :attr:`McExperiment.parameters`).

    Each point is an independent work item run by
    :func:`workbench.sweep.engine.sweep` on *backend*, cached atomically when
    it finishes (a rerun after a kill computes only the missing points).
    The exploration is deterministic, so every backend gives the same frame.
    """
    if not points:
        raise ConfigError("points: give at least one configuration")
    return sweep(points, MC, backend=backend, jobs=jobs, scheduler=scheduler, client=client, cache=cache,
                 cache_root=cache_root, progress=progress, desc="model check")
