"""Regenerate every figure and summary table: ``make figures`` (``python -m workbench figures``).

The job, in order, each step under a progress bar:

1. the emulator's outcome tables (seed scenario, v5.1 and v5.3 int3
   entries), computed in parallel when not cached
   (:func:`workbench.emulate.explore.load_outcome_table`);
2. the race sweeps (:func:`workbench.sweep.engine.sweep`): strategies over CPU
   counts, over sync-round latency, the skip heatmap, and per-site vs
   batched over the number of sites; each is saved as
   ``data/sweeps/<name>.parquet``;
3. the summary tables, ``data/summary/<name>.csv``;
4. the figures, ``data/figures/<name>.svg/.pdf/.png`` (:func:`workbench.figures.style.save`).

Everything is cached by parameters and code version, and every random
number comes from one seed, so a second run is served from the caches and
writes byte-identical files. ``quick=True`` runs a reduced grid with fewer
trials (the same figures, coarser).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.process import die_with_parent
from workbench.base.store import check_writable, write_atomic

__all__ = ["GRIDS", "FIGURES", "FigureSpec", "regenerate", "grids", "batching_grid", "summaries", "Report",
           "digest"]


#: the grids of the full job and of ``--quick``
GRIDS = {
    "full": {
        "cpus": [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256],
        # 1-2-5 steps from 1 us to 10 ms
        "sync_round_ns": [m * 10.0 ** e for e in range(3, 7) for m in (1, 2, 5)] + [1e7],
        "sites": [1, 2, 5, 10, 20, 56, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 40000],
        "trials": 100_000,
    },
    "quick": {
        "cpus": [1, 4, 16, 64, 256],
        "sync_round_ns": [1e3, 1e4, 1e5, 1e6, 1e7],
        "sites": [1, 10, 56, 1000, 40000],
        "trials": 2_000,
    },
}

STRATEGIES = ("skip", "emulate_regs_caller", "emulate_new", "emulate_old", "spin", "stop_machine")
#: CPU count of the timing sweep (figure 2)
TIMING_CPUS = 64
#: per-CPU calls/s of each patched site in the batching sweep (uniform: 2e6 calls/s over 40,000)
SITE_RATE = 50.0
#: the (scenario, entry) outcome tables the job needs
OUTCOME_TABLES = (("seed", "v5.3"), ("seed", "v5.1"))


@dataclass(frozen=True)
class FigureSpec:
    """One output figure: its file name, the function that draws it, and the sweeps it reads."""

    name: str
    title: str
    sweeps: tuple


FIGURES = (
    FigureSpec("fig1_drops_vs_cpus", "Dropped invocations per patch vs CPU count", ("cpus",)),
    FigureSpec("fig2_drops_vs_timing", "Dropped invocations per patch vs sync-round latency", ("timing",)),
    FigureSpec("fig3_heatmap_skip", "skip: CPUs x sync-round latency", ("heatmap",)),
    FigureSpec("fig4_batching", "Per-site vs batched protocol over the number of sites", ("batching",)),
    FigureSpec("fig5_tradeoff", "Stall CPU-time against dropped invocations", ("cpus",)),
    FigureSpec("fig6_closed_form", "Closed form vs Monte Carlo", ("cpus", "timing", "heatmap", "batching")),
    FigureSpec("fig7_outcomes", "Emulated per-call outcomes, v5.1 vs v5.3 entry", ()),
)


def batching_grid(sites, trials, cpus=24, site_rate=SITE_RATE):
    """Per-site and batched protocol over *sites* call sites: a plain text_poke batch.

    The ``shared_regs_caller`` scenario rewrites ordinary sites only, so with
    the trampoline stages dropped (``trampolines=False``, as in Bristot's
    jump-label measurement) it patches exactly K sites, K >= 1. Each site is
    called *site_rate* times per second per CPU; outcomes are not needed
    (``outcomes="none"``): the figure counts IPIs, time and trapped calls.
    """
    from workbench.race.experiment import race_grid
    from workbench.sweep.engine import Grid

    return Grid.concat(
        race_grid(scenario="shared_regs_caller", strategy="skip", protocol=["per_site", "batched"],
                  cpus=cpus, hot={"do_IRQ": 0.0, "__migrate_task": 0.0}, tail_functions=int(k),
                  tail_rate=site_rate * int(k), zipf_s=0.0, trampolines=False, outcomes="none",
                  trials=trials)
        for k in sites)


def grids(quick=False) -> dict:
    """The job's sweeps: name -> :class:`workbench.sweep.engine.Grid`."""
    from workbench.race.experiment import race_grid

    g = GRIDS["quick" if quick else "full"]
    trials = g["trials"]
    return {
        "cpus": race_grid(strategy=list(STRATEGIES), cpus=g["cpus"], trials=trials),
        "timing": race_grid(strategy=list(STRATEGIES), cpus=TIMING_CPUS, sync_round_ns=g["sync_round_ns"],
                            trials=trials),
        "heatmap": race_grid(strategy="skip", cpus=g["cpus"], sync_round_ns=g["sync_round_ns"], trials=trials),
        "batching": batching_grid(g["sites"], trials),
    }


@dataclass
class Report:
    """What :func:`regenerate` did: files written, sweep statistics, seconds per step."""

    files: list = field(default_factory=list)
    sweeps: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def summary(self) -> str:
        pts = sum(s["points"] for s in self.sweeps.values())
        cached = sum(s["cached"] for s in self.sweeps.values())
        lines = [f"sweeps: {pts} points, {cached} from cache, {pts - cached} computed"]
        lines += [f"  {k}: {v:.1f} s" for k, v in self.seconds.items()]
        lines.append(f"wrote {len(self.files)} files")
        return "\n".join(lines)


def _load_tables(jobs, progress):
    """The emulator's outcome tables, two at a time when there are two CPUs."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from workbench.emulate.explore import load_outcome_table

    n = min(len(OUTCOME_TABLES), jobs or os.cpu_count() or 1)
    out = {}
    with tqdm(total=len(OUTCOME_TABLES), desc="emulator outcome tables", unit="table",
              disable=not progress, leave=False, file=sys.stderr) as bar:
        if n <= 1:
            for s, e in OUTCOME_TABLES:
                out[(s, e)] = load_outcome_table(s, e, progress=False)
                bar.update(1)
        else:
            it = Parallel(n_jobs=n, backend="loky", return_as="generator")(
                delayed(_load_table_in_worker)(s, e, os.getpid()) for s, e in OUTCOME_TABLES)
            for key, table in zip(OUTCOME_TABLES, it):
                out[key] = table
                bar.update(1)
    return out


def summaries(frames: dict, tables: dict) -> dict:
    """The summary tables (name -> frame) of the sweeps and outcome tables."""
    from workbench.race.simulator import bristot_comparison
    from workbench.race.experiment import long_metrics

    out = {}
    keep = ["strategy", "protocol", "cpus", "sync_round_ns", "trials"]
    stats = [f"{m}_{s}" for m in ("violations", "dropped_tracer", "dropped_livepatch", "trapped",
                                  "stall_ns", "patch_ns", "ipis") for s in ("mean", "lo", "hi", "cf")]
    for name in ("cpus", "timing", "heatmap"):
        out[f"drops_vs_{name}" if name != "heatmap" else "heatmap_skip"] = frames[name][keep + stats]
    b = frames["batching"]
    bat = b[["protocol", "cpus", "n_sites", "ipis_mean", "patch_ns_mean", "patch_ns_cf",
             "trapped_mean", "trapped_lo", "trapped_hi", "trapped_cf", "window_ns_mean"]].copy()
    out["batching"] = bat
    out["bristot"] = bristot_comparison()
    t = frames["cpus"]
    out["tradeoff"] = pd.DataFrame({
        "strategy": t["strategy"], "cpus": t["cpus"], "stall_cpu_ms": t["stall_ns_mean"] / 1e6,
        "dropped_per_patch": t["dropped_tracer_mean"] + t["dropped_livepatch_mean"],
        "violations_per_patch": t["violations_mean"], "patch_ms": t["patch_ns_mean"] / 1e6})
    long = long_metrics(pd.concat([frames[k] for k in ("cpus", "timing", "heatmap", "batching")],
                                  ignore_index=True))
    long = long[long["se"] > 0]
    long = long.assign(z=(long["mean"] - long["cf"]) / long["se"],
                       rel=(long["mean"] - long["cf"]).abs() / long["cf"].abs().where(long["cf"] != 0))
    out["closed_form_check"] = (long.groupby("metric", sort=True)
                                .agg(points=("z", "size"), z_mean=("z", "mean"), z_sd=("z", "std"),
                                     z_max_abs=("z", lambda z: z.abs().max()),
                                     rel_diff_max=("rel", "max")).reset_index())
    out["outcomes"] = pd.concat(list(tables.values()), ignore_index=True)
    return out


def _write_csv(frame, path):
    # %.6g: readable, and the same text for the same numbers
    text = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    return write_atomic(path, text.encode(), what="summary")


def _draw(name, frames, tables):
    from workbench.figures import plots

    if name == "fig1_drops_vs_cpus":
        return plots.drops(frames["cpus"], x="cpus")
    if name == "fig2_drops_vs_timing":
        return plots.drops(frames["timing"], x="sync_round_ns")
    if name == "fig3_heatmap_skip":
        return plots.heatmap(frames["heatmap"])
    if name == "fig4_batching":
        return plots.batching(frames["batching"])
    if name == "fig5_tradeoff":
        return plots.tradeoff(frames["cpus"])
    if name == "fig6_closed_form":
        return plots.closed_vs_monte_carlo(pd.concat([frames[k] for k in ("cpus", "timing", "heatmap",
                                                                          "batching")], ignore_index=True))
    if name == "fig7_outcomes":
        return plots.outcome_grid(pd.concat(list(tables.values()), ignore_index=True))
    raise ConfigError(f"figure: unknown {name!r}")


def _render(name, frames, tables, coordinator=None):
    """Draw and check one figure; ``(name, {format: bytes}, problems)``.

    In a worker process (not *coordinator*) it first arranges to die with
    its parent; it never writes: the coordinating process writes the files,
    so nothing is written after it is gone.
    """
    # imported here: matplotlib's start-up is paid only by the process that draws
    from workbench.figures.style import figure_check, render

    if coordinator is not None and os.getpid() != coordinator:
        die_with_parent()
    fig = _draw(name, frames, tables)
    problems = figure_check(fig)  # lays the figure out once
    fig.set_layout_engine("none")  # keep that layout for all three formats
    return name, render(fig), problems


def _load_table_in_worker(scenario, entry, coordinator):
    """:func:`workbench.emulate.explore.load_outcome_table` in a worker that dies with its parent."""
    # imported here: the emulator (Unicorn) starts only in the process that needs it
    from workbench.emulate.explore import load_outcome_table

    if os.getpid() != coordinator:
        die_with_parent()
    return load_outcome_table(scenario, entry, progress=False)


def regenerate(quick=False, *, backend="local", jobs=None, scheduler=None, client=None, seed=0,
               outdir=None, progress=True, only=None, cache_root=None) -> Report:
    """Run every sweep, write every summary CSV and figure; return a :class:`Report`.

    Outputs go under *outdir* (default :func:`workbench.base.paths.data_dir`):
    ``sweeps/``, ``summary/``, ``figures/``. *backend*, *jobs*, *scheduler*,
    *client* and *cache_root* are passed to :func:`workbench.sweep.engine.sweep` (with
    ``backend="dask"`` and no client, one cluster serves every sweep). *only*
    limits the figures drawn (names from :data:`FIGURES`). Raises
    :class:`ConfigError` for an unknown figure or a bad backend setting.
    """
    from tqdm.auto import tqdm

    from workbench.base.paths import data_dir
    from workbench.figures.style import write_files
    from workbench.sweep.engine import BACKENDS, check_scheduler, save_frame, sweep

    names = [f.name for f in FIGURES]
    wanted = names if only is None else list(only)
    if not wanted:
        raise ConfigError(f"only: empty list; choose from {', '.join(names)}")
    for n in wanted:
        if n not in names:
            raise ConfigError(f"figure: unknown {n!r}; choose from {', '.join(names)}")
    if jobs is not None:
        jobs = int(check_range("jobs", jobs, 1, 4096, integer=True))
    seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
    check_choice("backend", backend, BACKENDS)
    if scheduler is not None and client is None:
        check_scheduler(scheduler)
    out = Path(outdir) if outdir is not None else data_dir()
    for sub in ("sweeps", "summary", "figures"):
        check_writable(out / sub / "check", what="outdir")
    report = Report()
    t0 = time.perf_counter()

    tables = _load_tables(1 if backend == "serial" else jobs, progress)
    report.seconds["emulator outcome tables"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    frames = {}
    with ExitStack() as stack:
        if backend == "dask" and client is None:  # one cluster for every sweep, not one each
            from workbench.sweep.engine import dask_client

            client, scheduler = stack.enter_context(dask_client(scheduler, None, jobs)), None
        for name, grid in grids(quick).items():  # every sweep: the summary tables read them all
            frame = sweep(grid, seed=seed, backend=backend, jobs=jobs, scheduler=scheduler, client=client,
                          progress=progress, desc=f"sweep {name}", cache_root=cache_root)
            report.sweeps[name] = frame.attrs["sweep"]
            frames[name] = frame
            report.files.append(save_frame(frame, out / "sweeps" / f"{name}{'_quick' if quick else ''}.parquet"))
    report.seconds["sweeps"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    for name, frame in summaries(frames, tables).items():
        report.files.append(_write_csv(frame, out / "summary" / f"{name}.csv"))
    report.seconds["summary tables"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    spec = {f.name: f for f in FIGURES}
    tasks = [(name, {k: frames[k] for k in spec[name].sweeps}, tables if name == "fig7_outcomes" else {},
              os.getpid()) for name in wanted]
    n = 1 if backend == "serial" else min(len(tasks), jobs or os.cpu_count() or 1)
    with tqdm(total=len(tasks), desc="figures", unit="fig", disable=not progress, leave=False,
              file=sys.stderr) as bar:
        if n <= 1:
            done = (_render(*t) for t in tasks)
        else:
            from joblib import Parallel, delayed

            done = Parallel(n_jobs=n, backend="loky", return_as="generator")(delayed(_render)(*t) for t in tasks)
        for name, rendered, problems in done:
            report.files += write_files(out / "figures", name, rendered)
            report.problems += [f"{name}: {p}" for p in problems]
            bar.update(1)
    report.seconds["figures"] = time.perf_counter() - t3
    report.seconds["total"] = time.perf_counter() - t0
    return report


def digest(paths) -> str:
    """One SHA-256 over the bytes of *paths* (sorted): equal digests, equal outputs."""
    h = hashlib.sha256()
    for p in sorted(map(Path, paths)):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
