"""The figures of the workbench: one function per figure.

Every figure function takes a tidy frame (a :func:`workbench.sweep.engine.sweep`
result of the race simulator) and returns a matplotlib
``Figure`` of a fixed size, drawn in the workbench's style
(:mod:`workbench.figures.style`: palette, markers, sizes, :func:`save`,
:func:`figure_check`, :func:`text_overlaps`, whose names this module
re-exports). A frame that lacks the columns a figure needs raises
:class:`workbench.base.errors.ConfigError`.

Figures (docs/FIGURES.md says what each shows):

* :func:`drops` -- violations and dropped tracer calls per patch against
  CPU count or sync-round latency, one line per strategy, 95% bands;
* :func:`heatmap` -- one strategy over CPUs x sync-round latency;
* :func:`batching` -- per-site vs batched updates over the number of
  sites, Bristot's measurement marked;
* :func:`tradeoff` -- stall CPU-time against dropped invocations;
* :func:`closed_vs_monte_carlo` -- the closed form against the Monte Carlo;
* :func:`arch_compare` -- i386 beside x86_64: tracer and livepatch losses
  per patch against CPUs, each line labelled with its kernel.

The emulator's outcome table (figure 7) is drawn by
:mod:`workbench.figures.outcome_plots`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from workbench.base.errors import ConfigError
from workbench.base.units import human_count, human_ns
from workbench.race.experiment import long_metrics
from workbench.race.timing import BRISTOT, Anchor, Timing
from workbench.figures.style import (METRIC_LABELS, OKABE_ITO, SIZES, STRATEGY_ORDER, STRATEGY_STYLE,
                                     X_AXES, DecadeLocator, PlotFigure, eng_tick, figure_check, log_x,
                                     marker_stagger, need_columns, new_figure, save, set_x, strategies_in, strategy_style,
                                     style, styled, symlog_y, text_overlaps)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ARCH_PANELS", "ARCH_WHY", "METRIC_LABELS", "OKABE_ITO", "PlotFigure", "SIZES", "STRATEGY_ORDER",
    "STRATEGY_STYLE", "arch_compare", "batching", "closed_vs_monte_carlo", "drops", "drops_compare",
    "figure_check", "heatmap", "new_figure", "save", "style", "text_overlaps", "tradeoff",
]


# -- figure 1 and 2: drops against CPUs or patch timing ----------------------------------------

def _drops_series(frame: pd.DataFrame, x: str, m: str, strategies: list[str], scale: float) -> dict:
    series = {}
    for s in strategies:
        d = frame[frame["strategy"] == s].sort_values(x)
        series[s] = (d[x].to_numpy() * scale, d[f"{m}_mean"].to_numpy(),
                     d[f"{m}_lo"].clip(lower=0).to_numpy(), d[f"{m}_hi"].to_numpy())
    return series


def _drops_panel(ax: Axes, series: dict, strategies: list[str], x: str, bands: bool, handles: dict) -> None:
    """One panel of :func:`drops`: a line (and band) per strategy of *series*."""
    every = marker_stagger({s: v[1] for s, v in series.items()})
    for k, s in enumerate(strategies):
        xs, mean, lo, hi = series[s]
        color, marker, label = strategy_style(s)
        zero = bool(len(mean)) and np.all(mean == 0)
        if bands and not zero:
            ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
        (line,) = ax.plot(xs, mean, color=color, marker=marker, markevery=every[s],
                          linestyle="-" if k % 2 == 0 else (0, (4, 1.5)), label=label)
        handles.setdefault(label, line)
    set_x(ax, x)


def _top(series: dict) -> float:
    return max((float(np.nanmax(v[3])) if len(v[3]) else 0.0) for v in series.values())


@styled
def drops(frame: pd.DataFrame, x: str = "cpus", metrics: Iterable[str] = ("violations", "dropped_tracer"),
          size: str = "wide", title: str | None = None, bands: bool = True, panel_notes: dict | None = None,
          legend_title: str | None = None) -> Figure:
    """One panel per metric: its per-patch mean against *x*, a line per strategy.

    *x* is ``cpus`` (log2 axis) or ``sync_round_ns`` (shown in µs, log
    axis). Shaded bands are the Monte Carlo's 95% interval of the mean
    (``_lo``/``_hi``). The y axis is linear below 1 and logarithmic above,
    so strategies that never drop sit visibly on 0 (lines that coincide show
    their markers at alternate points). A panel over ``sync_round_ns`` names
    its CPU count in its title. *panel_notes* (metric -> text) adds a second
    title line to a panel (e.g. the scenario its numbers come from);
    *legend_title* heads the legend. Raises :class:`ConfigError` if the
    frame lacks the columns.
    """
    metrics = list(metrics)
    need_columns(frame, [x, "strategy"] + [f"{m}_{s}" for m in metrics for s in ("mean", "lo", "hi")], "drops")
    fig, axes = new_figure(size, 1, len(metrics))
    strategies = strategies_in(frame)
    scale = X_AXES.get(x, (x, 1.0, ""))[1]
    handles = {}
    for ax, m in zip(axes[0], metrics, strict=True):
        series = _drops_series(frame, x, m, strategies, scale)
        _drops_panel(ax, series, strategies, x, bands, handles)
        symlog_y(ax, _top(series))
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        where = ""
        if x != "cpus" and "cpus" in frame and frame["cpus"].nunique() == 1:
            c = int(frame["cpus"].iloc[0])
            where = f" ({c} CPUs)"  # the panel's CPU count, not the x label's
            if x == "sync_round_ns" and c != BRISTOT.cpus:
                # the knob is the round's mean on 24 CPUs; say what the round is at this panel's CPUs
                # (one factor whatever the knob: both parts of a round scale together, Timing.for_round)
                model = Timing()
                k = model.round_moments(c)[0] / model.round_moments(BRISTOT.cpus)[0]
                ax.set_xlabel(f"{ax.get_xlabel()}\n(the round on {c} CPUs is {k:.2f}× this)")
        note = (panel_notes or {}).get(m)
        ax.set_title({"violations": "Live patch: violations", "dropped_tracer": "Tracer: dropped calls"}
                     .get(m, m) + where + (f"\n{note}" if note else ""))
    # one legend for both panels, below them: inside a panel it would cover data
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncols=3, handlelength=2.6,
               columnspacing=1.6, title=legend_title, title_fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


@styled
def drops_compare(frames: dict[str, pd.DataFrame], metric: str = "violations", x: str = "cpus", size: str = "wide",
                  bands: bool = True) -> Figure:
    """Configurations side by side: one panel per entry of *frames* (label -> sweep frame), same axes.

    Each panel is a :func:`drops` panel of *metric*; the y axes share one
    range (the largest of all panels), so equal heights mean equal values.
    Raises :class:`ConfigError` for no frames or a frame lacking the columns.
    """
    if not frames:
        raise ConfigError("frames: give at least one configuration to draw")
    for label, f in frames.items():
        need_columns(f, [x, "strategy"] + [f"{metric}_{s}" for s in ("mean", "lo", "hi")], f"drops_compare {label}")
    fig, axes = new_figure(size, 1, len(frames), sharey=True)
    scale = X_AXES.get(x, (x, 1.0, ""))[1]
    handles, tops, drawn = {}, [], []
    for ax, (label, f) in zip(axes[0], frames.items(), strict=True):
        strategies = strategies_in(f)
        series = _drops_series(f, x, metric, strategies, scale)
        _drops_panel(ax, series, strategies, x, bands, handles)
        tops.append(_top(series))
        ax.set_title(label)
        drawn.append(ax)
    for ax in drawn:
        symlog_y(ax, max(tops))
    axes[0][0].set_ylabel(METRIC_LABELS.get(metric, metric))
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncols=3, handlelength=2.6,
               columnspacing=1.6)
    return fig


# -- figure 3: heatmap --------------------------------------------------------------------------

@styled
def heatmap(frame: pd.DataFrame, metrics: Iterable[str] = ("violations", "dropped_tracer"), strategy: str = "skip",
            size: str = "wide_tall", panel_notes: dict | None = None) -> Figure:
    """Per-patch means of *strategy* over CPUs (rows) x sync-round latency (columns).

    One panel per metric (*panel_notes*, metric -> text, adds a second
    title line, e.g. the scenario its numbers come from), logarithmic colour
    scale, each with its colour
    bar. Cells are drawn at their grid values (no interpolation).
    """
    from matplotlib.colors import LogNorm  # start-up: matplotlib, only when a figure is drawn

    metrics = list(metrics)
    need_columns(frame, ["strategy", "cpus", "sync_round_ns"] + [f"{m}_mean" for m in metrics], "heatmap")
    d = frame[frame["strategy"] == strategy]
    if d.empty:
        raise ConfigError(f"strategy: the frame has no rows for {strategy!r}")
    fig, axes = new_figure(size, 1, len(metrics))
    cpus = np.sort(d["cpus"].unique())
    rounds = np.sort(d["sync_round_ns"].unique())
    for ax, m in zip(axes[0], metrics, strict=True):
        grid = (d.pivot_table(index="cpus", columns="sync_round_ns", values=f"{m}_mean", aggfunc="mean")
                .reindex(index=cpus, columns=rounds).to_numpy())
        positive = grid[grid > 0]
        norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
        masked = np.ma.masked_where(~(grid > 0), grid)
        mesh = ax.pcolormesh(np.arange(len(rounds) + 1), np.arange(len(cpus) + 1), masked,
                             cmap="viridis", norm=norm, shading="flat")
        ax.set_xticks(np.arange(len(rounds)) + 0.5, [eng_tick(float(f"{r / 1e3:.3g}")) for r in rounds])
        ax.set_yticks(np.arange(len(cpus)) + 0.5, [str(c) for c in cpus])
        if len(rounds) > 9:  # label every other column: the labels must not collide
            for i, lab in enumerate(ax.get_xticklabels()):
                lab.set_visible(i % 2 == 0)
        ax.set_xlabel(X_AXES["sync_round_ns"][0])
        ax.set_ylabel("CPUs")
        ax.grid(False)
        note = (panel_notes or {}).get(m)  # e.g. the scenario the panel's numbers come from
        ax.set_title(f"{strategy_style(strategy)[2]}: {METRIC_LABELS[m].splitlines()[0]}"
                     + (f"\n{note}" if note else ""))
        cb = fig.colorbar(mesh, ax=ax, pad=0.02, fraction=0.06)
        cb.set_label(METRIC_LABELS[m].splitlines()[0])
        cb.ax.tick_params(labelsize=6.5)
        if norm is not None and norm.vmax / norm.vmin < 1e3:  # < 3 decades: label 1-2-5, not 1k/10k alone
            cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(eng_tick))  # 1k/1M, as on every figure
        cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    return fig


# -- figure 4: batching and scale --------------------------------------------------------------

_BATCHING_STYLE = {"per_site": (OKABE_ITO["vermillion"], "o", "a breakpoint round per site"),
                   "batched": (OKABE_ITO["blue"], "s", "one batch")}


@styled
def batching(frame: pd.DataFrame, anchor: Anchor | None = None, size: str = "grid") -> Figure:
    """Per-site vs batched breakpoint rounds over the number of sites.

    Four panels: IPI sync rounds per update, update (patch) duration,
    trapped calls per update, and the batched/per-site ratio of trapped
    calls. *anchor* (default :data:`workbench.race.timing.BRISTOT`) is marked:
    Bristot's 24-CPU, 56-site measurement (168 vs 3 IPIs, 57 vs 1.4 ms,
    ~10% fewer int3 hits batched).
    """
    anchor = anchor or BRISTOT
    need_columns(frame, ["batching", "n_sites", "ipis_mean", "patch_ns_mean", "trapped_mean",
                  "trapped_lo", "trapped_hi"], "batching")
    fig, axes = new_figure(size, 2, 2)
    ax_ipi, ax_time, ax_trap, ax_ratio = axes.ravel()
    by = {p: frame[frame["batching"] == p].sort_values("n_sites") for p in ("per_site", "batched")}
    for p, d in by.items():
        if d.empty:
            raise ConfigError(f"batching: the frame has no {p} rows")
        color, marker, label = _BATCHING_STYLE[p]
        n = d["n_sites"].to_numpy()
        ax_ipi.plot(n, d["ipis_mean"], color=color, marker=marker, label=label)
        ax_time.plot(n, d["patch_ns_mean"] / 1e6, color=color, marker=marker, label=label)
        ax_trap.fill_between(n, d["trapped_lo"].clip(lower=1e-12), d["trapped_hi"], color=color,
                             alpha=0.18, linewidth=0)
        ax_trap.plot(n, d["trapped_mean"], color=color, marker=marker, label=label)
    merged = by["per_site"].merge(by["batched"], on="n_sites", suffixes=("_p", "_b"))
    ratio = merged["trapped_mean_b"] / merged["trapped_mean_p"]
    ax_ratio.plot(merged["n_sites"], ratio, color=OKABE_ITO["bluish_green"], marker="^",
                  label="model")
    star = dict(marker="*", markersize=10, color=OKABE_ITO["black"], linestyle="none", zorder=5)
    ax_ipi.plot([anchor.sites] * 2, [anchor.ipis_per_site, anchor.ipis_batched], label="Bristot, measured", **star)
    ax_time.plot([anchor.sites] * 2, [anchor.update_per_site_ns / 1e6, anchor.update_batched_ns / 1e6],
                 label="Bristot, measured", **star)
    ax_ratio.plot([anchor.sites], [anchor.hits_ratio], label="Bristot, measured", **star)
    for ax in (ax_ipi, ax_time, ax_trap, ax_ratio):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(eng_tick))  # 1k/1M ticks, as on every figure
        ax.yaxis.set_minor_formatter(NullFormatter())  # not 2x10^-1 on a short log range
    for ax in axes.ravel():
        set_x(ax, "n_sites")
    ax_ipi.set_ylabel("IPI sync rounds per update")
    ax_time.set_ylabel("update duration (ms)")
    ax_trap.set_ylabel("trapped calls per update")
    ax_ratio.set_ylabel("trapped calls, batched / per site")
    cpus = int(frame["cpus"].iloc[0])
    ax_ipi.set_title(f"IPIs ({cpus} CPUs)")
    ax_time.set_title("Update duration")
    ax_trap.set_title("Calls that hit an int3")
    ax_ratio.set_title("Exposure of a batch vs one site at a time")
    for ax in (ax_ipi, ax_time, ax_trap):
        ax.legend(loc="upper left", borderaxespad=0.2)
    ax_ratio.legend(loc="upper left", borderaxespad=0.2)
    ax_ipi.annotate(f"{anchor.sites} sites,\n{anchor.cpus} CPUs", (anchor.sites, anchor.ipis_batched),
                    xytext=(8, 4), textcoords="offset points", fontsize=6.5)
    return fig


# -- figure 5: the trade-off ---------------------------------------------------------------------

def _pick_cpus(frame: pd.DataFrame, want: Iterable[int] = (24, 256)) -> list[int]:
    """The CPU counts of *want* present in *frame*; else the nearest present (log scale)."""
    have = np.sort(frame["cpus"].unique())
    out = []
    for w in want:
        c = int(have[np.argmin(np.abs(np.log2(have) - np.log2(w)))])
        if c not in out:
            out.append(c)
    return out


@styled
def tradeoff(frame: pd.DataFrame, cpus: Iterable[int] = (24, 256), size: str = "grid") -> Figure:
    """What each strategy costs and what it drops, per patch, at two CPU counts.

    Columns: the CPU counts of *cpus* (or the nearest in the frame). Top
    row: stall CPU-time per patch summed over CPUs (linear axis from 0, the
    panel's own range), split into the
    int3 handler's own time (trapped calls x handler time, from the
    frame's ``trapped_mean`` times the larger of ``handler_ns`` and
    ``handler_batch_ns``, an upper bound) and the rest, CPUs held waiting
    (``spin``'s re-traps, ``stop_machine``'s rendezvous). Bottom row: dropped tracer and livepatch calls per patch
    (linear below 1, log above, so zero shows as zero; livepatch drops are
    named only when there are some). Every bar carries its value. Strategies are the frame's, one row each, in the workbench's order.
    """
    need_columns(frame, ["strategy", "cpus", "stall_ns_mean", "trapped_mean", "handler_ns",
                  "dropped_tracer_mean", "dropped_livepatch_mean"], "tradeoff")
    picked = _pick_cpus(frame, cpus)
    fig, axes = new_figure(size, 2, len(picked))
    strategies = strategies_in(frame)
    ys = np.arange(len(strategies))
    drop_top = float((frame["dropped_tracer_mean"] + frame["dropped_livepatch_mean"]).max())
    # no livepatch call dropped (a scenario without a livepatch: an i386 kernel has none): the
    # axis and legend say nothing of them
    has_lp = bool((frame["dropped_livepatch_mean"] > 0).any())
    for j, c in enumerate(picked):
        d = frame[frame["cpus"] == c].set_index("strategy").reindex(strategies)
        # a batch's handler searches its entries (handler_batch_ns) unless the batch holds one
        # site (handler_ns): the larger bounds the handler's share, the rest is waiting
        per_call = d["handler_ns"].astype(float)
        if "handler_batch_ns" in d:
            per_call = np.maximum(per_call, d["handler_batch_ns"].astype(float))
        stall = d["stall_ns_mean"].to_numpy(float)
        handler = np.minimum(d["trapped_mean"].to_numpy(float) * per_call.to_numpy(), stall)
        wait = stall - handler
        wait[wait <= 1e-9 * stall] = 0.0  # float rounding of trapped x handler, not waiting
        colours = [strategy_style(s)[0] for s in strategies]
        ax = axes[0, j]
        # a linear axis from 0: a bar's length is the time (on a log axis it would start at an
        # arbitrary small value); the panel's own range, as the two CPU counts differ 30-fold
        top = float(np.nanmax(stall)) / 1e6 if np.isfinite(stall).any() and np.nanmax(stall) > 0 else 1.0
        ax.barh(ys, handler / 1e6, color=colours, height=0.62)
        ax.barh(ys, np.where(wait > 0, wait / 1e6, 0), left=handler / 1e6, color=colours,
                height=0.62, hatch="////", edgecolor="white", linewidth=0)
        for y, v in zip(ys, stall, strict=True):
            ax.text(v / 1e6 + top * 0.02, y, human_ns(v), va="center", fontsize=6)
        ax.set_xlim(0, top * 1.3)  # room for the value labels
        ax.set_title(f"{c} CPUs: stall CPU-time per patch")
        ax.set_xlabel("stall CPU-time, summed over CPUs (ms)\nsolid: int3 handler time; hatched: waiting")
        ax = axes[1, j]
        tr = d["dropped_tracer_mean"].to_numpy(float)
        lp = d["dropped_livepatch_mean"].to_numpy(float)
        ax.barh(ys, tr, color=colours, height=0.62)
        ax.barh(ys, lp, left=tr, color=colours, height=0.62, hatch="....", edgecolor="white", linewidth=0)
        dead = (d["deadlocks_mean"].to_numpy(float) if "deadlocks_mean" in d
                else np.zeros(len(strategies)))
        for y, a, b, k in zip(ys, tr, lp, dead, strict=True):
            # livepatch drops are a small share of the bar: say them, or they vanish; a
            # strategy that hangs the patch is not "zero drops": say so on its bar
            text = "0" if a + b <= 0 else (f"{human_count(a)} + {human_count(b)} lp" if b > 0 else human_count(a))
            if k > 0:  # deadlocks_mean: trapped calls that can never leave the int3 handler
                text += f"; the patch deadlocks ({human_count(k)} calls stuck in int3)"
            ax.text(max(a + b, 0) * 1.15 + 0.08, y, text, va="center", fontsize=6,
                    color=OKABE_ITO["vermillion"] if k > 0 else "black")
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
        e = int(np.ceil(np.log10(max(drop_top, 10)))) + 2  # room for the value labels
        ax.set_xlim(0, 10.0 ** e)
        ax.xaxis.set_major_locator(DecadeLocator(3))
        ax.xaxis.set_minor_locator(DecadeLocator(1))
        ax.xaxis.set_major_formatter(FuncFormatter(eng_tick))
        ax.set_title(f"{c} CPUs: dropped handler calls per patch")
        ax.set_xlabel("dropped calls: tracer + livepatch (lp)" if has_lp else "dropped tracer calls")
        for ax in axes[:, j]:
            ax.set_yticks(ys, [strategy_style(s)[2] for s in strategies] if j == 0 else [""] * len(ys))
            ax.set_ylim(len(strategies) - 0.5, -0.5)
            ax.grid(axis="y", visible=False)
            ax.tick_params(axis="y", length=0)
    axes[0, 0].set_ylabel("int3 handler strategy")
    axes[1, 0].set_ylabel("int3 handler strategy")
    # a solid bar is the handler's time in the top row and tracer drops in the bottom row: the top
    # row's axis label says what its parts are, the legend below is the bottom row's alone
    grey = OKABE_ITO["grey"]
    handles = [Patch(facecolor=grey, label="tracer calls dropped")]
    if has_lp:
        handles.append(Patch(facecolor=grey, hatch="....", edgecolor="white", label="livepatch calls dropped (lp)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, title="dropped calls (bottom row)",
               title_fontsize=6.5)
    return fig


# -- figure 6: closed form against Monte Carlo --------------------------------------------------

_SHORT = {"trapped": "trapped calls", "violations": "violations", "dropped_tracer": "dropped tracer calls",
          "stall_ns": "stall CPU-time (ns)", "patch_ns": "patch duration (ns)", "ipis": "IPI rounds",
          "window_ns": "int3 window (ns)", "dropped_livepatch": "dropped livepatch calls"}

@styled
def closed_vs_monte_carlo(frame: pd.DataFrame, metrics: Iterable[str] = ("trapped", "violations", "dropped_tracer",
                                                                   "stall_ns", "patch_ns"),
                          size: str = "wide_tall") -> Figure:
    """The closed form checked against the Monte Carlo, over every point of the sweeps.

    Left: the ratio ``Monte Carlo mean / closed form`` against the closed
    form (log x), one marker style per metric, with the 95% interval of each
    mean as an error bar; the ratio should scatter around 1 within its bars.
    Right: the standardised differences ``(mean - closed form) / se``
    against the standard normal density: if the Monte Carlo is unbiased and
    its standard errors are right, they match. Points whose closed form is 0
    (nothing to compare) or whose standard error is 0 (constants, such as
    IPI counts) are left out.
    """
    need_columns(frame, [f"{m}_{s}" for m in metrics for s in ("mean", "se", "cf")], "closed_vs_monte_carlo")
    long = long_metrics(frame, metrics)
    fig, axes = new_figure(size, 1, 2)
    ax, hx = axes[0]
    colours = [OKABE_ITO[c] for c in ("vermillion", "blue", "bluish_green", "orange", "reddish_purple")]
    markers = ["o", "s", "^", "D", "v"]
    zs = []
    for (m, c, mk) in zip(metrics, colours, markers, strict=False):  # a colour and marker each, 5 at most
        d = long[(long["metric"] == m) & (long["cf"] > 0) & (long["se"] > 0)]
        if d.empty:
            continue
        ratio = d["mean"] / d["cf"]
        ax.errorbar(d["cf"], ratio, yerr=1.96 * d["se"] / d["cf"], linestyle="none", marker=mk, color=c,
                    alpha=0.75, markersize=3.5, elinewidth=0.6, capsize=0, label=_SHORT.get(m, m))
        zs.append(((d["mean"] - d["cf"]) / d["se"]).to_numpy())
    ax.axhline(1.0, color=OKABE_ITO["grey"], linewidth=0.8, zorder=0)
    log_x(ax)
    ax.xaxis.set_major_locator(LogLocator(10, numticks=6))
    ax.set_xlabel("closed form (calls, or ns)")
    ax.set_ylabel("Monte Carlo mean / closed form")
    ax.set_title("Every point and metric of the sweeps")
    ax.legend(loc="lower right", borderaxespad=0.2, handlelength=1.2)
    z = np.concatenate(zs) if zs else np.zeros(0)
    z = z[np.isfinite(z)]
    if z.size:
        span = max(4.0, float(np.ceil(np.abs(z).max())))
        hx.hist(z, bins=np.linspace(-span, span, 33), density=True, color=OKABE_ITO["sky_blue"],
                edgecolor="white", linewidth=0.4, label=f"{z.size} (point, metric) pairs")
        t = np.linspace(-span, span, 400)
        hx.plot(t, np.exp(-t * t / 2) / np.sqrt(2 * np.pi), color=OKABE_ITO["black"], linewidth=1,
                label="standard normal")
        hx.set_xlim(-span, span)
        hx.set_ylim(0, 0.62)
    hx.set_xlabel("(Monte Carlo mean − closed form) / standard error")
    hx.set_ylabel("density")
    hx.set_title(f"Standardised difference (mean {np.mean(z) if z.size else 0:+.2f}, "
                 f"sd {np.std(z) if z.size else 0:.2f})")
    hx.legend(loc="upper left", borderaxespad=0.2)
    return fig


# -- figure 8: the two arches on the same question ---------------------------------------------

#: arch -> colour and marker of :func:`arch_compare`
_ARCH_STYLE = {"i386": (OKABE_ITO["vermillion"], "o"), "x86_64": (OKABE_ITO["blue"], "s")}
#: the panels of :func:`arch_compare`: (metric, title, scenarios in the order drawn)
ARCH_PANELS = (
    ("dropped_tracer", "Tracer running, an ops added:\ndropped tracer calls", ("tracer_add_livepatch", "tracer_add_probe")),
    ("dropped_livepatch", "Livepatch in place, tracer added:\ndropped livepatch calls", ("seed",)),
)
#: why the arches differ (left) or agree (right): the routing rule of each
#: (workbench.kernel.ftrace.FtraceState.site_target; docs/KERNEL.md §17)
ARCH_WHY = ("Tracer: on i386 every traced site passes the shared ftrace_call while the update rewrites it; on x86_64 "
            "a site of one ops calls that ops' own trampoline,\nso only the 2 sites being re-routed lose calls. "
            "Livepatch: the same 2 sites move from the livepatch's own trampoline to ftrace_regs_caller on both "
            "(lines coincide).")


@styled
def arch_compare(frame: pd.DataFrame, kernels: dict[tuple[str, str], str], size: str = "wide_tall",
                 panels: tuple = ARCH_PANELS, why: dict = ARCH_WHY) -> Figure:
    """i386 beside x86_64 on the same question: per-patch losses against CPUs, one line per
    (scenario, arch), each labelled with the kernel it belongs to.

    *frame* is a race sweep over ``arch`` x ``scenario`` x ``cpus`` (one
    strategy); *kernels* maps ``(scenario, arch)`` to its kernel tag
    (``real i386``, ``i386 sketch``, ``real x86_64``;
    :meth:`workbench.emulate.scenario.Scenario.kernel_on`). Colour is the
    arch, line style and marker fill the scenario (coinciding lines show
    their markers at alternate points); bands are the Monte Carlo's 95%
    interval of the mean; the legend's title (*why*) says why the arches
    differ or agree.
    The y axis is linear below 1 and logarithmic above
    (:func:`workbench.figures.style.symlog_y`). Raises :class:`ConfigError`
    if the frame lacks the columns or mixes strategies.
    """
    metrics = [p[0] for p in panels]
    need_columns(frame, ["arch", "scenario", "cpus", "strategy"]
          + [f"{m}_{s}" for m in metrics for s in ("mean", "lo", "hi")], "arch_compare")
    if frame["strategy"].nunique() != 1:
        raise ConfigError("arch_compare: give one strategy (filter the frame on strategy)")
    strategy = strategy_style(str(frame["strategy"].iloc[0]))[2]
    fig, axes = new_figure(size, 1, len(panels))
    dashes = ("-", (0, (4, 1.5)), (0, (1, 1.2)))
    handles = []
    for ax, (m, title, scenarios) in zip(axes[0], panels, strict=True):
        series = {}
        for j, sc in enumerate(scenarios):
            for arch in _ARCH_STYLE:
                d = frame[(frame["scenario"] == sc) & (frame["arch"] == arch)].sort_values("cpus")
                if len(d):
                    series[(j, sc, arch)] = d
        # coinciding lines show their markers at alternate points: scenarios (same arch) by
        # position, arches of one scenario where their values agree
        every = marker_stagger({k: d[f"{m}_mean"].to_numpy(float) for k, d in series.items()})
        if len(scenarios) > 1:
            every = {k: (k[0], len(scenarios)) for k in series}
        top = 0.0
        for (j, sc, arch), d in series.items():
            colour, marker = _ARCH_STYLE[arch]
            xs = d["cpus"].to_numpy(float)
            mean, lo, hi = (d[f"{m}_{s}"].to_numpy(float) for s in ("mean", "lo", "hi"))
            ax.fill_between(xs, np.clip(lo, 0, None), hi, color=colour, alpha=0.15, linewidth=0)
            (line,) = ax.plot(xs, mean, color=colour, marker=marker, linestyle=dashes[j % len(dashes)],
                              markevery=every[(j, sc, arch)], markerfacecolor=colour if j == 0 else "white",
                              label=f"{sc}, {arch} [{kernels[(sc, arch)]}]")
            handles.append(line)
            top = max(top, float(np.nanmax(hi)))
        set_x(ax, "cpus")
        symlog_y(ax, top)
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.set_title(f"{title} ({strategy})")
    fig.legend(handles=handles, loc="outside lower center", ncols=3, handlelength=2.6, columnspacing=1.2,
               fontsize=6, title=why, title_fontsize=6)
    return fig
