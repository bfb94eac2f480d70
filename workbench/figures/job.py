"""Regenerate every figure and summary table: ``make figures`` (``python -m workbench figures``).

The job, in order, each step under a progress bar:

1. the emulator's outcome tables (the seed and tracer_add_probe scenarios:
   i386 with the v5.1 and v5.3 int3 entries, x86_64 with v5.1 and v5.2),
   computed in parallel when not cached
   (:func:`workbench.emulate.explore.load_outcome_table`);
2. the race sweeps (:func:`workbench.sweep.engine.sweep`): strategies over CPU
   counts, over sync-round latency, the skip heatmap, per-site vs
   batched over the number of sites, and skip on i386 and x86_64 over CPU
   counts (the arch comparison); each is saved as
   ``data/sweeps/<name>.parquet``;
3. the summary tables, ``data/summary/<name>.csv``;
4. the figures, ``data/figures/<name>.svg/.pdf/.png`` (:func:`workbench.figures.style.save`),
   each with a one-line caption of its fixed conditions and its provenance in
   the file metadata and in ``<name>.json`` beside it.

Every output carries its provenance (:mod:`workbench.base.provenance`: code
version, scenario, entry, seed, grid, quick or full) as columns, and the
Parquet files also in their schema metadata. Numbers are written at full
precision (a CSV float reads back bit-identical), and every time column
names its unit (``_ns``). A ``--quick`` run writes every file with a
``_quick`` suffix, so a reduced-grid result is never mistaken for the
published one.

Everything is cached by parameters and code version, and every random
number comes from one seed, so a second run is served from the caches and
writes byte-identical files. A figure is drawn again only when the digest of
its inputs changed (:func:`input_digest`: the frames it reads, its name and
the package's code version, kept in ``figures/<name>.inputs.json`` next to
its files) or one of its files is not the file written then: the manifest
records each output's own SHA-256, so a missing, emptied, truncated or
swapped file is drawn again. ``quick=True`` runs a reduced grid with fewer
trials (the same figures, coarser).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import data_dir
from workbench.base.process import die_with_parent
from workbench.base.provenance import provenance, stamp
from workbench.base.store import check_writable, read_regular, write_atomic
from workbench.base.version import code_version
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH, FORMATS, STRATEGIES, write_columns
from workbench.emulate.scenario import load_scenario, scenario_names
from workbench.race.experiment import long_metrics, race_grid
from workbench.race.bristot import bristot_comparison
from workbench.sweep.backends import BACKENDS, check_scheduler, dask_client, local_parallel
from workbench.sweep.engine import Grid, save_frame, sweep

__all__ = ["FIGURES", "GRIDS", "FigureSpec", "Report", "all_tables", "batching_grid", "by_panel", "digest", "grids",
           "input_digest", "regenerate", "summaries"]


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
        "cpus": [1, 4, 16, 24, 64, 256],
        "sync_round_ns": [1e3, 1e4, 1e5, 1e6, 1e7],
        "sites": [1, 10, 56, 1000, 40000],
        "trials": 2_000,
    },
}

#: CPU count of the timing sweep (figure 2)
TIMING_CPUS = 64
#: per-CPU calls/s of each patched site in the batching sweep (uniform: 2e6 calls/s over 40,000)
SITE_RATE = 50.0
#: the i386 (scenario, entry) outcome tables the job needs
OUTCOME_TABLES = (("seed", "v5.3"), ("seed", "v5.1"), ("tracer_add_probe", "v5.3"),
                  ("tracer_add_probe", "v5.1"))
#: the x86_64 (scenario, entry) outcome tables the job needs: figure 7's x86_64 panels
#: (v5.1 without the entry's gap, v5.2 with 2700fefdb2d9's) and the seed's race sweeps
X86_64_OUTCOME_TABLES = (("seed", "v5.2"), ("seed", "v5.1"), ("tracer_add_probe", "v5.2"),
                         ("tracer_add_probe", "v5.1"))
#: every outcome table of the job as (scenario, entry, arch), i386's first
TABLES = (tuple((s, e, "i386") for s, e in OUTCOME_TABLES)
          + tuple((s, e, "x86_64") for s, e in X86_64_OUTCOME_TABLES))


def all_tables() -> tuple[tuple[str, str, str], ...]:
    """Every outcome table a full run writes to ``outcomes.csv``: :data:`TABLES` first, then each
    shipped scenario on each arch that can run it (really, or as the seed mail's i386 sketch)
    with each of that arch's int3 entries."""
    rest = []
    for arch in ARCHES:
        for name in scenario_names():
            try:
                load_scenario(name).check_arch(arch)
            except ConfigError:  # a scenario this arch cannot have has no table on it
                continue
            rest += [(name, e, arch) for e in ENTRIES_BY_ARCH[arch] if (name, e, arch) not in TABLES]
    return TABLES + tuple(rest)
#: the race sweeps' scenarios, each on the arch whose real kernel has it: seed on x86_64 (a
#: livepatch in place, the tracer being enabled: its misses are no drops; HAVE_LIVEPATCH is
#: x86_64's alone) and tracer_add_probe on i386 (the tracer running, a kprobe-like SAVE_REGS
#: ops added: tracer misses are drops)
SCENARIOS = ("seed", "tracer_add_probe")
SCENARIO_ARCH = {"seed": "x86_64", "tracer_add_probe": "i386"}
#: which scenario each drops panel (figures 1-3) reads
PANEL_SCENARIO = {"violations": "seed", "dropped_tracer": "tracer_add_probe"}
#: the scenario of the trade-off (figure 5): a real i386 kernel, the tracer running, a probe added
TRADEOFF_SCENARIO = "tracer_add_probe"
#: the arch comparison (figure 8): the same scenarios on i386 and x86_64 under skip; on i386
#: the livepatch ones are the seed mail's sketch, on x86_64 a real kernel
#: (workbench.figures.plots.ARCH_PANELS says which panel reads which)
ARCH_SCENARIOS = ("seed", "tracer_add_livepatch", "tracer_add_probe")
ARCH_STRATEGY = "skip"


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
    FigureSpec("fig4_batching", "Per-site vs batched updates over the number of sites", ("batching",)),
    FigureSpec("fig5_tradeoff", "Stall CPU-time against dropped invocations", ("cpus",)),
    FigureSpec("fig6_closed_form", "Closed form vs Monte Carlo", ("cpus", "timing", "heatmap", "batching")),
    FigureSpec("fig7_outcomes", "Emulated per-call outcomes: i386 v5.1 vs v5.3 entry, x86_64 v5.1 vs v5.2", ()),
    FigureSpec("fig8_arch_compare", "i386 beside x86_64: tracer and livepatch losses per patch vs CPUs", ("arch",)),
)


def batching_grid(sites: list[int], trials: int, cpus: int = 24, site_rate: float = SITE_RATE) -> Grid:
    """Per-site and batched updates over *sites* call sites: a plain text_poke batch.

    The ``shared_regs_caller`` scenario rewrites ordinary sites only, so with
    the trampoline stages dropped (``trampolines=False``, as in Bristot's
    jump-label measurement) it patches exactly K sites, K >= 1. Each site is
    called *site_rate* times per second per CPU; outcomes are not needed
    (``outcomes="none"``): the figure counts IPIs, time and trapped calls.
    """
    return Grid.concat(
        race_grid(scenario="shared_regs_caller", strategy="skip", batching=["per_site", "batched"],
                  cpus=cpus, hot={"do_IRQ": 0.0, "__migrate_task": 0.0}, tail_functions=int(k),
                  tail_rate=site_rate * int(k), zipf_s=0.0, trampolines=False, outcomes="none",
                  trials=trials)
        for k in sites)


def grids(quick: bool = False) -> dict[str, Grid]:
    """The job's sweeps: name -> :class:`workbench.sweep.engine.Grid`."""
    g = GRIDS["quick" if quick else "full"]
    trials = g["trials"]

    def real(**params):  # each scenario on the arch whose real kernel has it
        return Grid.concat(race_grid(arch=SCENARIO_ARCH[sc], scenario=sc, **params) for sc in SCENARIOS)

    return {
        "cpus": real(strategy=list(STRATEGIES), cpus=g["cpus"], trials=trials),
        "timing": real(strategy=list(STRATEGIES), cpus=TIMING_CPUS, sync_round_ns=g["sync_round_ns"],
                       trials=trials),
        "heatmap": real(strategy="skip", cpus=g["cpus"], sync_round_ns=g["sync_round_ns"], trials=trials),
        "batching": batching_grid(g["sites"], trials),
        "arch": race_grid(arch=list(ARCHES), scenario=list(ARCH_SCENARIOS), strategy=ARCH_STRATEGY,
                          cpus=g["cpus"], trials=trials),
    }


@dataclass
class Report:
    """What :func:`regenerate` did: files written, sweep statistics, seconds per step."""

    files: list = field(default_factory=list)
    sweeps: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    figures_kept: list = field(default_factory=list)  #: figures whose inputs had not changed

    def summary(self) -> str:
        pts = sum(s["points"] for s in self.sweeps.values())
        cached = sum(s["cached"] for s in self.sweeps.values())
        # "from cache": points whose results the verified point cache already held, from an earlier
        # run or from an earlier sweep of this run that shares the point (a cold run has some)
        lines = [f"sweeps: {pts} points, {cached} read from the point cache (results of earlier runs, or of "
                 f"points another sweep of this run computed first), {pts - cached} computed"]
        if self.figures_kept:
            lines.append(f"figures: {len(self.figures_kept)} unchanged inputs, not drawn again")
        lines += [f"  {k}: {v:.1f} s" for k, v in self.seconds.items()]
        lines.append(f"wrote {len(self.files)} files")
        return "\n".join(lines)


def _load_tables(keys: tuple[tuple[str, str, str], ...], jobs: int | None,
                 progress: bool) -> dict[tuple[str, str, str], pd.DataFrame]:
    """The emulator's outcome tables: cached ones read here, the others computed two at a time
    when there are two CPUs (no worker is started when every table is cached)."""
    from tqdm.auto import tqdm  # start-up: tqdm, only when the job runs

    from workbench.emulate.explore import cached_outcome_table, load_outcome_table  # start-up: Unicorn, coordinator only

    cached = {(s, e, a): cached_outcome_table(s, e, arch=a) for s, e, a in keys}
    missing = [key for key, table in cached.items() if table is None]
    n = min(len(missing), jobs or os.cpu_count() or 1)
    out = {key: table for key, table in cached.items() if table is not None}
    with tqdm(total=len(keys), initial=len(out), desc="emulator outcome tables", unit="table",
              disable=not progress, leave=False, file=sys.stderr) as bar:
        if n <= 1:
            for s, e, a in missing:
                out[(s, e, a)] = load_outcome_table(s, e, progress=False, arch=a)
                bar.update(1)
        else:
            from joblib import delayed  # start-up: joblib, only when a pool runs

            it = local_parallel(n, return_as="generator")(
                delayed(_load_table_in_worker)(s, e, a, os.getpid()) for s, e, a in missing)
            for key, table in zip(missing, it, strict=True):
                out[key] = table
                bar.update(1)
    # in the keys' order, as the summaries concatenate them; every row names its arch (an i386
    # table's rows are written without the column)
    return {key: out[key] if "arch" in out[key] else out[key].assign(arch=key[2]) for key in keys}


def summaries(frames: dict, tables: dict) -> dict:
    """The summary tables (name -> frame) of the sweeps and outcome tables."""
    out = {}
    keep = ["arch", "scenario", "entry", "strategy", "batching", "cpus", "sync_round_ns", "trials"]
    stats = [f"{m}_{s}" for m in ("violations", "dropped_tracer", "dropped_livepatch", "deadlocks", "trapped",
                                  "stall_ns", "patch_ns", "ipis") for s in ("mean", "lo", "hi", "cf")]
    for name in ("cpus", "timing", "heatmap"):
        out[f"drops_vs_{name}" if name != "heatmap" else "heatmap_skip"] = frames[name][keep + stats]
    b = frames["batching"]
    bat = b[["arch", "scenario", "entry", "batching", "cpus", "n_sites", "ipis_mean", "patch_ns_mean", "patch_ns_cf",
             "trapped_mean", "trapped_lo", "trapped_hi", "trapped_cf", "window_ns_mean"]].copy()
    out["batching"] = bat
    bristot = bristot_comparison()
    # the unit each row's values are in, as a column (the rows mix IPI counts, ms and ns)
    bristot.insert(1, "unit", bristot["quantity"].str.extract(r"\((ms|ns)\)", expand=False).fillna("count"))
    out["bristot"] = bristot.assign(scenario="seed")
    t = frames["cpus"]
    out["tradeoff"] = pd.DataFrame({
        "arch": t["arch"], "scenario": t["scenario"], "entry": t["entry"], "strategy": t["strategy"], "cpus": t["cpus"],
        "stall_cpu_ns": t["stall_ns_mean"],
        "dropped_per_patch": t["dropped_tracer_mean"] + t["dropped_livepatch_mean"],
        "violations_per_patch": t["violations_mean"], "deadlocks_per_patch": t["deadlocks_mean"],
        "patch_ns": t["patch_ns_mean"]})
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
    if "arch" in frames:  # the arch comparison (figure 8): every row names its arch
        out["drops_by_arch"] = frames["arch"][keep + stats]
    # which kernel each row's scenario belongs to: real i386, the seed mail's i386 sketch, or
    # (rows naming their arch) real x86_64
    for name, frame in out.items():
        if "scenario" in frame.columns:
            arch = frame["arch"].astype(str) if "arch" in frame.columns else ["i386"] * len(frame)
            pairs = list(zip(frame["scenario"].astype(str), arch, strict=True))
            tags = {p: load_scenario(p[0]).kernel_on(p[1]) for p in set(pairs)}  # a scenario read once
            out[name] = frame.assign(kernel=[tags[p] for p in pairs])[["scenario", "kernel"] + [c for c in frame.columns
                                                                           if c not in ("scenario", "kernel")]]
    return out


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    # full precision: pandas writes the shortest text that reads back as the same float
    text = frame.to_csv(index=False, lineterminator="\n")
    return write_atomic(path, text.encode(), what="summary")


def by_panel(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One frame whose metric columns come from :data:`PANEL_SCENARIO`'s scenario for each metric.

    Rows are those of the first scenario, matched on *keys* (strategy and the
    swept parameters); a panel then shows only numbers of the scenario its
    caption names.
    """
    if "scenario" not in frame or frame["scenario"].nunique() < 2:
        return frame
    first = next(iter(PANEL_SCENARIO.values()))
    out = frame[frame["scenario"] == first].set_index(keys).sort_index()
    for metric, scenario in PANEL_SCENARIO.items():
        other = frame[frame["scenario"] == scenario].set_index(keys)
        cols = [c for c in frame.columns if c.startswith(metric + "_")]
        out[cols] = other.loc[out.index, cols].to_numpy()
    return out.reset_index()


#: the second title line of each drops panel: the scenario its numbers come from, and its kernel
_PANEL_WHAT = {"seed": "real x86_64, tracer enabled", "tracer_add_probe": "real i386"}
_PANEL_NOTES = {m: f"scenario {sc} ({_PANEL_WHAT[sc]})" for m, sc in PANEL_SCENARIO.items()}
#: what a zero of spin does not say
_SPIN_NOTE = "spin shows 0 but deadlocks the patch: do_IRQ runs with interrupts off"


def _draw(name: str, frames: dict[str, pd.DataFrame], tables: dict):
    from workbench.figures import plots  # start-up: matplotlib, paid only by the process that draws

    if name == "fig1_drops_vs_cpus":
        return plots.drops(by_panel(frames["cpus"], ["strategy", "cpus"]), x="cpus", size="wide_tall",
                           panel_notes=_PANEL_NOTES, legend_title=_SPIN_NOTE)
    if name == "fig2_drops_vs_timing":
        return plots.drops(by_panel(frames["timing"], ["strategy", "sync_round_ns"]), x="sync_round_ns",
                           size="wide_tall", panel_notes=_PANEL_NOTES, legend_title=_SPIN_NOTE)
    if name == "fig3_heatmap_skip":
        return plots.heatmap(by_panel(frames["heatmap"], ["strategy", "cpus", "sync_round_ns"]),
                             panel_notes=_PANEL_NOTES)
    if name == "fig4_batching":
        return plots.batching(frames["batching"])
    if name == "fig5_tradeoff":
        t = frames["cpus"]
        return plots.tradeoff(t[t["scenario"] == TRADEOFF_SCENARIO] if "scenario" in t else t)
    if name == "fig6_closed_form":
        return plots.closed_vs_monte_carlo(pd.concat([frames[k] for k in ("cpus", "timing", "heatmap",
                                                                          "batching")], ignore_index=True))
    if name == "fig7_outcomes":
        from workbench.figures import outcome_plots  # start-up: matplotlib, paid only by the process that draws

        return outcome_plots.outcome_grid(pd.concat(list(tables.values()), ignore_index=True))
    if name == "fig8_arch_compare":
        a = frames["arch"]
        kernels = {(sc, ar): load_scenario(sc).kernel_on(ar) for sc, ar in
                   set(zip(a["scenario"].astype(str), a["arch"].astype(str), strict=True))}
        return plots.arch_compare(a, kernels)
    raise ConfigError(f"figure: unknown {name!r}")


def _data_of(name: str, frames: dict[str, pd.DataFrame], tables: dict) -> pd.DataFrame:
    """The frame a figure is drawn from (its conditions caption reads it)."""
    if name == "fig7_outcomes":
        return pd.concat(list(tables.values()), ignore_index=True)
    if name == "fig8_arch_compare":  # scenario, arch and kernel are in its legend; the entry is each arch's own
        return frames["arch"].drop(columns=["scenario", "entry"], errors="ignore")
    if name == "fig5_tradeoff" and "scenario" in frames.get("cpus", ()):  # the one scenario it draws
        return frames["cpus"][frames["cpus"]["scenario"] == TRADEOFF_SCENARIO]
    # the arch comparison's sweep is figure 8's alone
    return pd.concat([v for k, v in frames.items() if k != "arch"], ignore_index=True)


def input_digest(name: str, frames: dict, tables: dict, memo: dict | None = None) -> str:
    """SHA-256 of everything figure *name* is drawn from: the frames and outcome
    tables it reads (names, columns, dtypes, values) and the package's code
    version (any change to the plotting code draws every figure again).
    *memo* (``id(frame)`` -> hashed values) lets the figures of one job that
    read the same frame hash its values once."""
    h = hashlib.sha256(f"{name}\0{code_version()}\0".encode())
    memo = {} if memo is None else memo
    for label, frame in sorted([(f"sweep:{k}", v) for k, v in frames.items()]
                               + [("table:" + ":".join(k), v) for k, v in tables.items()]):
        h.update(f"{label}\0{list(frame.columns)}\0{[str(t) for t in frame.dtypes]}\0".encode())
        if id(frame) not in memo:
            memo[id(frame)] = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
        h.update(memo[id(frame)])
    return h.hexdigest()


def _manifest(outdir: Path, name: str) -> Path:
    return outdir / f"{name}.inputs.json"


def _file_digest(path: Path) -> str | None:
    """SHA-256 of the regular file *path* (never through a symlink), or None if it is not one."""
    try:
        data = read_regular(path)
    except OSError:
        return None
    return None if data is None else hashlib.sha256(data).hexdigest()


def _up_to_date(name: str, key: str, outdir: Path) -> tuple[list[Path], list[str]] | None:
    """``(paths, problems)`` of figure *name* if its files were drawn from inputs with digest *key*
    and each file is still the one written then (its own SHA-256, recorded in the manifest): a
    truncated, emptied, swapped or replaced output is drawn again."""

    try:
        m = json.loads(read_regular(_manifest(outdir, name)) or b"")
    except (OSError, ValueError):
        return None
    paths = [outdir / f"{name}.{fmt}" for fmt in FORMATS]
    if (outdir / f"{name}.json").exists() or (outdir / f"{name}.json").is_symlink():
        paths.append(outdir / f"{name}.json")  # the provenance record written beside the figure
    if not isinstance(m, dict) or m.get("digest") != key or not isinstance(m.get("outputs"), dict):
        return None
    outputs = m["outputs"]
    if set(outputs) != {p.name for p in paths} or any(_file_digest(p) != outputs[p.name] for p in paths):
        return None
    return paths, list(m.get("problems", []))


def _write_manifest(outdir: Path, name: str, key: str, problems: list, rendered: dict) -> None:
    """Record the input digest and each output's own digest after the figure's files are written
    (atomically), so that a damaged output is seen and drawn again."""
    outputs = {f"{name}.{fmt}": hashlib.sha256(data).hexdigest() for fmt, data in rendered.items()}
    write_atomic(_manifest(outdir, name), json.dumps({"digest": key, "problems": problems, "outputs": outputs},
                                                     indent=1, sort_keys=True).encode())


def _render(name: str, frames: dict[str, pd.DataFrame], tables: dict, coordinator: int | None = None,
            prov: dict | None = None, suffix: str = "") -> tuple[str, dict[str, bytes], list[str]]:
    """Draw, caption and check one figure; ``(file name, {format: bytes}, problems)``.

    The caption names the fixed conditions of the figure's data and its
    provenance (:func:`workbench.figures.style.conditions`); the file name is
    ``<name><suffix>`` (``_quick`` for a quick run). In a worker process
    (not *coordinator*) it first arranges to die with its parent; it never
    writes: the coordinating process writes the files, so nothing is
    written after it is gone.
    """
    from workbench.figures.style import caption, conditions, figure_check, render  # start-up: matplotlib, drawer only

    if coordinator is not None and os.getpid() != coordinator:
        die_with_parent()
    fig = _draw(name, frames, tables)
    text = conditions(_data_of(name, frames, tables), prov)
    caption(fig, text)
    problems = figure_check(fig)  # lays the figure out once
    fig.set_layout_engine("none")  # keep that layout for all three formats
    return name + suffix, render(fig, provenance=None if prov is None else {**prov, "figure": name + suffix},
                                 caption_text=text), problems


def _load_table_in_worker(scenario: str, entry: str, arch: str, coordinator: int) -> pd.DataFrame:
    """:func:`workbench.emulate.explore.load_outcome_table` in a worker that dies with its parent."""
    from workbench.emulate.explore import load_outcome_table  # start-up: Unicorn, only in this table's worker

    if os.getpid() != coordinator:
        die_with_parent()
    return load_outcome_table(scenario, entry, progress=False, arch=arch)


def regenerate(quick: bool = False, *, backend: str = "local", jobs: int | None = None, scheduler: str | None = None,
               client=None, seed: int = 0, outdir: Path | str | None = None, progress: bool = True,
               only: Iterable[str] | None = None, cache_root: Path | None = None) -> Report:
    """Run every sweep, write every summary CSV and figure; return a :class:`Report`.

    Outputs go under *outdir* (default :func:`workbench.base.paths.data_dir`):
    ``sweeps/``, ``summary/``, ``figures/``. *backend*, *jobs*, *scheduler*,
    *client* and *cache_root* are passed to :func:`workbench.sweep.engine.sweep` (with
    ``backend="dask"`` and no client, one cluster serves every sweep). *only*
    limits the figures drawn (names from :data:`FIGURES`). Raises
    :class:`ConfigError` for an unknown figure or a bad backend setting.
    """
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
    run = "quick" if quick else "full"
    suffix = "_quick" if quick else ""  # a reduced-grid output never carries a published name
    report = Report()
    t0 = time.perf_counter()

    # a full run's outcomes.csv holds every scenario x entry x arch; the figures draw TABLES
    tables = _load_tables(TABLES if quick else all_tables(), 1 if backend == "serial" else jobs, progress)
    report.seconds["emulator outcome tables"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    with ExitStack() as stack:
        if backend == "dask" and client is None:  # one cluster for every sweep, not one each
            client, scheduler = stack.enter_context(dask_client(scheduler, None, jobs)), None
        frames = _run_sweeps(report, out, quick, seed, suffix, backend=backend, jobs=jobs, scheduler=scheduler,
                             client=client, progress=progress, cache_root=cache_root)
    report.seconds["sweeps"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    _write_summaries(report, out, frames, tables, seed, run, suffix)
    report.seconds["summary tables"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    _draw_figures(report, out, wanted, frames, {k: tables[k] for k in TABLES}, seed, run, suffix, 1 if backend == "serial" else jobs,
                  progress)
    report.seconds["figures"] = time.perf_counter() - t3
    report.seconds["total"] = time.perf_counter() - t0
    return report


def _run_sweeps(report: Report, out: Path, quick: bool, seed: int, suffix: str, **how) -> dict[str, pd.DataFrame]:
    """Every sweep of the job (the summary tables read them all), saved under ``sweeps/``; *how* is
    passed to :func:`workbench.sweep.engine.sweep`."""
    run = "quick" if quick else "full"
    frames = {}
    for name, grid in grids(quick).items():
        frame = sweep(grid, seed=seed, desc=f"sweep {name}", **how)
        report.sweeps[name] = frame.attrs["sweep"]
        frame = stamp(frame, _prov(provenance, frame, seed, name, run))
        frames[name] = frame
        report.files.append(save_frame(frame, out / "sweeps" / f"{name}{suffix}.parquet"))
    report.files.append(write_columns(out / "sweeps" / f"columns{suffix}.json",
                                      {c for f in frames.values() for c in f.columns}))
    return frames


def _write_summaries(report: Report, out: Path, frames: dict[str, pd.DataFrame], tables: dict, seed: int,
                     run: str, suffix: str) -> None:
    """Every summary table, stamped with the provenance of the sweeps it reads, under ``summary/``."""
    columns = set()
    for name, frame in summaries(frames, tables).items():
        grid = _SOURCES.get(name, name)
        src = frame if "scenario" in frame else pd.concat(
            [frames[k] for k in grid.split("+") if k in frames] or [frame], ignore_index=True)
        prov = _prov(provenance, src, None if name in _SEEDLESS else seed, grid, run)
        stamped = stamp(frame, prov)
        columns |= set(stamped.columns)
        report.files.append(_write_csv(stamped, out / "summary" / f"{name}{suffix}.csv"))
    report.files.append(write_columns(out / "summary" / f"columns{suffix}.json", columns))


def _draw_figures(report: Report, out: Path, wanted: list[str], frames: dict[str, pd.DataFrame], tables: dict,
                  seed: int, run: str, suffix: str, jobs: int | None, progress: bool) -> None:
    """The *wanted* figures whose inputs changed (or whose files are not the ones written), drawn in
    up to *jobs* processes; the others kept as they are."""
    from tqdm.auto import tqdm  # start-up: tqdm, only when the job runs

    spec = {f.name: f for f in FIGURES}
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    tasks, keys, hashed = [], {}, {}  # hashed: each frame's values hashed once for every figure reading it
    for name in wanted:
        fr = {k: frames[k] for k in spec[name].sweeps}
        tb = tables if name == "fig7_outcomes" else {}
        prov = _prov(provenance, _data_of(name, fr, tb), None if name == "fig7_outcomes" else seed,
                     "+".join(spec[name].sweeps) or "outcomes", run)
        task = (name, fr, tb, os.getpid(), prov, suffix)
        name = name + suffix
        keys[name] = input_digest(name, fr, tb, hashed)
        kept = _up_to_date(name, keys[name], figdir)
        if kept is None:
            tasks.append(task)
        else:  # same inputs, same code: the files on disk are what drawing would write
            report.files += kept[0]
            report.problems += [f"{name}: {p}" for p in kept[1]]
            report.figures_kept.append(name)
    if tasks:
        from workbench.figures.style import write_files  # start-up: matplotlib, only when a figure is drawn
    n = min(len(tasks), jobs or os.cpu_count() or 1)
    with tqdm(total=len(tasks), desc="figures", unit="fig", disable=not progress, leave=False,
              file=sys.stderr) as bar:
        if n <= 1:
            done = (_render(*t) for t in tasks)
        else:
            from joblib import delayed  # start-up: joblib, only when a pool runs

            done = local_parallel(n, return_as="generator")(delayed(_render)(*t) for t in tasks)
        for name, rendered, problems in done:
            report.files += write_files(out / "figures", name, rendered)
            report.problems += [f"{name}: {p}" for p in problems]
            _write_manifest(figdir, name, keys[name], problems, rendered)
            bar.update(1)


#: the sweeps each summary table is computed from (its provenance's grid)
_SOURCES = {"drops_vs_cpus": "cpus", "drops_vs_timing": "timing", "heatmap_skip": "heatmap", "batching": "batching",
            "tradeoff": "cpus", "closed_form_check": "cpus+timing+heatmap+batching", "bristot": "bristot",
            "outcomes": "outcomes", "drops_by_arch": "arch"}
#: summaries with no random numbers behind them (closed form; exhaustive emulation)
_SEEDLESS = ("bristot", "outcomes")


def _prov(provenance: Callable[..., dict], frame: pd.DataFrame, seed: int | None, grid: str, run: str) -> dict:
    """The provenance of one output: scenario and entry read from *frame* when it has them."""
    return provenance(seed=seed, grid=grid, run=run,
                      scenario=list(frame["scenario"].astype(str)) if "scenario" in frame else None,
                      entry=list(frame["entry"].astype(str)) if "entry" in frame else None)


def digest(paths: Iterable[Path | str]) -> str:
    """One SHA-256 over the bytes of *paths* (sorted): equal digests, equal outputs."""
    h = hashlib.sha256()
    for p in sorted(map(Path, paths)):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()
