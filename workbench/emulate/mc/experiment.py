"""Exhaustive model checking of many configurations as sweep work items.

Models ``arch/x86/kernel/alternative.c``'s patching protocol against k
calling CPUs through :mod:`workbench.emulate.mc.check`: the model checker's
own :class:`~workbench.sweep.experiment.Experiment`, handed to the sweep
engine as a plug-in (the engine knows nothing of it). Each (arch, scenario,
strategy, entry, poke_method, calls) configuration is split into independent
subtrees of its exploration (:func:`workbench.emulate.mc.check.subtrees`),
and each subtree is one point of a sweep
(:func:`workbench.sweep.engine.sweep`): it runs serially, in local
processes or on Dask, and is cached atomically when it finishes, so a
killed run resumes where it stopped. The subtrees' rows are then joined
per configuration as :func:`workbench.emulate.mc.check.merge` joins
results; the split is a function of the configuration alone, so every
backend, worker count and rerun gives the same frame.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from workbench.base.errors import ConfigError, check_range
from workbench.base.vocabulary import SPLIT
from workbench.emulate.mc.check import bad_outcome, check, default_calls, outcome_rows, subtrees
from workbench.emulate.mc.schedule import outcome_text, save_schedule
from workbench.emulate.mc.config import MAX_CALLING_CPUS, POKE_METHOD_HISTORY, McConfig
from workbench.sweep.engine import sweep
from workbench.sweep.experiment import Experiment

__all__ = ["BEHAVIOUR", "MC", "McExperiment", "behaviours", "check_all", "multi_cpu_only",
           "write_counterexamples"]

#: what one call did, as compared between engines and CPU counts
BEHAVIOUR = ["function", "trapped", "body", "tracer_runs", "livepatch_ran", "crash", "deadlock"]


class McExperiment(Experiment):
    """One subtree of a configuration's exhaustive exploration as a sweep point (a work item).

    *prefix* is the subtree's root, a schedule of thread ids from
    :func:`workbench.emulate.mc.check.subtrees`; ``[]`` is the whole tree.
    """

    name = "mc"
    parameters = {"arch": "i386", "scenario": "seed", "strategy": "emulate_new", "entry": None, "poke_method": None,
                  "calls": None, "handler": "strategy", "coherent_fetch": False, "cpus": 2, "items": None,
                  "kernel_tree_path": None, "kernel_tree": "workbench", "prefix": []}

    def normalize(self, params: dict) -> dict:
        p = super().normalize(params)
        k = int(check_range("cpus", p["cpus"], 1, MAX_CALLING_CPUS, integer=True))
        calls = p["calls"] or default_calls(k, p["scenario"], arch=p["arch"])
        p["calls"] = [list(c) for c in calls]
        p["items"] = None if p["items"] is None else list(p["items"])
        p["prefix"] = [int(t) for t in p["prefix"] or ()]
        p["cpus"] = len(calls)
        cfg = self.config(p)
        p["arch"], p["entry"], p["poke_method"] = cfg.arch, cfg.entry, cfg.poke_method
        # whose trampolines run: the tree's tag (version and digest of its files) keys the point's cache
        tree = cfg.tree()
        p["kernel_tree_path"] = None if tree is None else str(tree.root)
        p["kernel_tree"] = "workbench" if tree is None else tree.tag
        return p

    @staticmethod
    def config(p: dict) -> McConfig:
        return McConfig(p["scenario"], p["strategy"], p["entry"], p["poke_method"],
                        tuple(tuple(c) for c in p["calls"]), p["handler"], bool(p["coherent_fetch"]),
                        items=None if p.get("items") is None else tuple(p["items"]),
                        kernel_tree=p.get("kernel_tree_path"), arch=p.get("arch", "i386")).checked()

    def prepare(self, points: list[dict], progress: bool = True):
        """Whether an exploration run in this process shows its live bar."""
        return {"progress": progress}

    def run(self, params, seed, stream, context):
        cfg = self.config(params)
        # a live bar in the coordinating process only (a worker's would interleave with others')
        show = bool(context and context.get("progress")) and multiprocessing.parent_process() is None
        with tqdm(desc=f"{cfg.arch} {cfg.strategy} {cfg.entry} {cfg.poke_method}", unit=" states", disable=not show,
                  leave=False, file=sys.stderr, mininterval=0.5) as bar:
            def progress(stats):  # each complete execution: states explored, pruned branches
                bar.update(stats.states - bar.n)
                bar.set_postfix(executions=stats.executions, pruned=stats.blocked, refresh=False)

            res = check(cfg, progress=progress, prefix=tuple(params["prefix"]))
        rows = outcome_rows(res) or [_no_outcome_row(cfg)]
        for r in rows:
            r.update({f"mc_{k}": v for k, v in res["stats"].items()})
            if r["outcome"] < 0:
                continue
            key = _key(res, r["outcome"])
            r["schedule"] = json.dumps(res["outcomes"][key]["schedule"])
            r["outcome_text"] = outcome_text(key)
            r["bad"] = bad_outcome(key)
        return rows

    def tally(self, rows: list[dict]) -> dict:
        """A finished subtree's states explored and executions pruned by sleep sets (the bar's totals)."""
        return {"states": int(rows[0]["mc_states"]), "pruned": int(rows[0]["mc_blocked"])} if rows else {}


def _no_outcome_row(cfg) -> dict:
    """The row of a subtree whose executions were all cut by their sleep sets (each trace is
    explored in another subtree): it reaches no outcome, but its statistics count. Every column
    of an outcome row, typed alike (``outcome`` = -1); dropped when the subtrees are joined."""
    return {"arch": cfg.arch, "scenario": cfg.scenario, "entry": cfg.entry, "strategy": cfg.strategy,
            "poke_method": cfg.poke_method, "handler": cfg.handler, "cpus": len(cfg.calls), "outcome": -1, "traces": 0,
            "cpu": -1, "call": -1, "function": "", "site_kind": "", "trapped": False, "body": "", "tracer_runs": 0,
            "livepatch_ran": False, "expected_before": "", "expected_after": "", "violation": 0,
            "dropped_tracer": 0, "dropped_livepatch": 0, "spurious": 0, "mixed": False, "crash": False,
            "crash_reason": "", "deadlock": False, "switches": 0, "schedule": "[]", "outcome_text": "",
            "bad": False, "kernel_tree": "workbench" if cfg.kernel_tree is None else cfg.tree().tag}


def _key(res, oid):
    return sorted(res["outcomes"], key=outcome_text)[oid]


#: the experiment the sweep engine runs for :func:`check_all`
MC = McExperiment()


#: the columns naming a configuration (every parameter but the subtree's root)
_CONFIG = [k for k in McExperiment.parameters if k != "prefix"]


def write_counterexamples(frame: pd.DataFrame, out_dir) -> list[str]:
    """Write one counterexample file per bad outcome of a :func:`check_all` frame; their paths,
    fewest context switches first."""
    files = []
    bad = frame[frame["bad"]].drop_duplicates(["arch", "strategy", "entry", "poke_method", "handler", "coherent_fetch",
                                               "calls", "items", "outcome"]).sort_values(
        ["switches", "arch", "strategy", "entry", "outcome"], kind="stable")
    for n, r in enumerate(bad.itertuples(index=False)):
        p = {k: getattr(r, k) for k in _CONFIG}
        for k in ("calls", "items"):
            if isinstance(p[k], str):
                p[k] = json.loads(p[k])
        cfg = McExperiment.config(p)
        arch = "" if cfg.arch == "i386" else f"{cfg.arch}_"  # i386 files keep the names they always had
        path = Path(out_dir) / f"cex_{n:03d}_{arch}{cfg.strategy}_{cfg.entry}_{cfg.poke_method}_{cfg.handler}.json"
        files.append(str(save_schedule(path, cfg, json.loads(r.schedule), r.outcome_text,
                                       note=f"{r.switches} context switches; {cfg.arch}; poke method {cfg.poke_method}: "
                                            f"{POKE_METHOD_HISTORY[cfg.poke_method]}")))
    return files


def _join(frame: pd.DataFrame) -> pd.DataFrame:
    """The subtrees' rows joined per configuration (the rule of :func:`~workbench.emulate.mc.check.merge`).

    Per configuration: trace counts and ``mc_*`` statistics summed, each
    outcome's rows taken from the subtree that reached it with the fewest
    context switches (the earliest subtree on a tie), outcome ids
    renumbered in the order of their text, ``mc_subtrees`` the number of
    subtrees."""
    if frame.empty:
        return frame
    stat_cols = [c for c in frame.columns if c.startswith("mc_")]
    out = []
    for _, g in frame.groupby(_CONFIG, sort=False, dropna=False):
        order = {p: n for n, p in enumerate(dict.fromkeys(g["prefix"]))}
        stats = g.drop_duplicates("prefix")[stat_cols].sum()
        g = g[g["outcome"] >= 0]  # subtrees that reached no outcome: their statistics only
        per = g.drop_duplicates(["prefix", "outcome_text"]).assign(_root=g["prefix"].map(order))
        traces = per.groupby("outcome_text")["traces"].sum()
        best = per.sort_values(["switches", "_root"], kind="stable").drop_duplicates("outcome_text")
        texts = sorted(traces.index)
        for oid, text in enumerate(texts):
            root = best.loc[best["outcome_text"] == text, "prefix"].iloc[0]
            rows = g[(g["prefix"] == root) & (g["outcome_text"] == text)].copy()
            rows["outcome"], rows["traces"] = oid, int(traces[text])
            for c in stat_cols:
                rows[c] = int(stats[c])
            rows["mc_subtrees"] = len(order)
            out.append(rows)
    joined = pd.concat(out, ignore_index=True).drop(columns="prefix")
    joined.attrs = frame.attrs
    return joined


def check_all(points: list[dict], backend: str = "serial", jobs=None, scheduler=None, client=None,
              cache: bool = True, cache_root=None, progress: bool = True, split: int = SPLIT) -> pd.DataFrame:
    """Explore every configuration in *points* (dicts of :attr:`McExperiment.parameters` without ``prefix``).

    Each configuration is split into about *split* subtrees
    (:func:`~workbench.emulate.mc.check.subtrees`), each an independent work
    item run by :func:`workbench.sweep.engine.sweep` on *backend* and cached
    atomically when it finishes (a rerun after a kill computes only the
    missing ones); the frame has one row per (configuration, outcome, CPU
    call), joined over the subtrees. The split and the exploration are
    deterministic, so every backend, worker count and rerun gives the same
    frame.
    """
    if not points:
        raise ConfigError("points: give at least one configuration")
    split = int(check_range("split", split, 1, 4096, integer=True))
    items = []
    for p in points:
        if p.get("prefix"):
            raise ConfigError("prefix: check_all splits each configuration itself; give configurations")
        n = MC.normalize(p)
        items.extend({**n, "prefix": list(root)} for root in subtrees(MC.config(n), split))
    # One subtree per chunk, all in the pool: the subtrees are sized already, and the first
    # (the leftmost of the depth-first search, where the sleep sets prune least) is often the
    # largest, which the engine's serial probe of the first point would run alone.
    frame = sweep(items, MC, backend=backend, jobs=jobs, scheduler=scheduler, client=client, cache=cache,
                  cache_root=cache_root, progress=progress, desc="model check", chunk_size=1, parallel_above=0)
    return _join(frame)


def behaviours(frame: pd.DataFrame) -> pd.DataFrame:
    """The distinct per-call behaviours (:data:`BEHAVIOUR`) of a calls or outcome frame, per
    strategy and entry, sorted; from the model checker or the 1-CPU exploration alike."""
    keys = ["arch", "strategy", "entry"] + BEHAVIOUR
    if "arch" not in frame:  # a 1-CPU frame of i386 names no arch (its rows as they always were)
        frame = frame.assign(arch="i386")
    return frame[keys].astype({"trapped": bool, "livepatch_ran": bool, "crash": bool, "deadlock": bool}) \
        .drop_duplicates().sort_values(keys, kind="stable").reset_index(drop=True)


def multi_cpu_only(together: pd.DataFrame, alone: pd.DataFrame) -> pd.DataFrame:
    """Behaviours of *together* (the calls on several CPUs) that no run in *alone* (each call on
    its own CPU) reaches, per arch, strategy and entry: what needs two calling CPUs."""
    a, b = behaviours(together), behaviours(alone)
    both = a.merge(b, how="left", indicator=True)
    return both[both["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
