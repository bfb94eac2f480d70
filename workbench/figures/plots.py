"""The figures of the workbench: one function per figure.

Every figure function takes a tidy frame (a :func:`workbench.sweep.engine.sweep`
result or the emulator's outcome table) and returns a matplotlib
``Figure`` of a fixed size, drawn in the workbench's style
(:mod:`workbench.figures.style`: palette, markers, sizes, :func:`save`,
:func:`figure_check`, :func:`text_overlaps`, whose names this module
re-exports). A frame that lacks the columns a figure needs raises
:class:`workbench.base.errors.ConfigError`.

Figures (docs/FIGURES.md says what each shows):

* :func:`drops` -- violations and dropped tracer calls per patch against
  CPU count or sync-round latency, one line per strategy, 95% bands;
* :func:`heatmap` -- one strategy over CPUs x sync-round latency;
* :func:`batching` -- per-site vs batched protocol over the number of
  sites, Bristot's measurement marked;
* :func:`tradeoff` -- stall CPU-time against dropped invocations;
* :func:`closed_vs_monte_carlo` -- the closed form against the Monte Carlo;
* :func:`outcome_grid` -- the emulator's per-trapped-call outcomes,
  strategy x site kind, one panel per kernel entry.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import LogLocator

from workbench.base.errors import ConfigError
from workbench.figures.style import (FORMATS, METRIC_LABELS, OKABE_ITO, SIZES, STRATEGY_ORDER, STRATEGY_STYLE, PlotFigure,
                       _eng, _set_x, _stagger, _strategies, _style, _styled, _symlog_y, _X, figure_check,
                       new_figure, save, style, text_overlaps)

__all__ = [
    "OKABE_ITO", "STRATEGY_STYLE", "STRATEGY_ORDER", "SIZES", "FORMATS", "METRIC_LABELS",
    "PlotFigure", "style", "new_figure", "save", "text_overlaps", "drops", "heatmap", "batching", "tradeoff",
    "closed_vs_monte_carlo", "outcome_grid", "figure_check",
]


def _need(frame, columns, what):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: frame lacks columns {', '.join(missing)}; pass a race sweep result")
    if not len(frame):
        raise ConfigError(f"{what}: the frame is empty")


# -- figure 1 and 2: drops against CPUs or patch timing ----------------------------------------

@_styled
def drops(frame, x="cpus", metrics=("violations", "dropped_tracer"), size="wide", title=None,
          bands=True):
    """One panel per metric: its per-patch mean against *x*, a line per strategy.

    *x* is ``cpus`` (log2 axis) or ``sync_round_ns`` (shown in µs, log
    axis). Shaded bands are the Monte Carlo's 95% interval of the mean
    (``_lo``/``_hi``). The y axis is linear below 1 and logarithmic above,
    so strategies that never drop sit visibly on 0 (lines that coincide show
    their markers at alternate points). Raises :class:`ConfigError` if the frame lacks the columns.
    """
    metrics = list(metrics)
    _need(frame, [x, "strategy"] + [f"{m}_{s}" for m in metrics for s in ("mean", "lo", "hi")], "drops")
    fig, axes = new_figure(size, 1, len(metrics))
    strategies = _strategies(frame)
    scale = _X.get(x, (x, 1.0, ""))[1]
    handles = {}
    for ax, m in zip(axes[0], metrics):
        series = {}
        for s in strategies:
            d = frame[frame["strategy"] == s].sort_values(x)
            series[s] = (d[x].to_numpy() * scale, d[f"{m}_mean"].to_numpy(),
                         d[f"{m}_lo"].clip(lower=0).to_numpy(), d[f"{m}_hi"].to_numpy())
        every = _stagger({s: v[1] for s, v in series.items()})
        top = max(float(np.nanmax(v[3])) if len(v[3]) else 0 for v in series.values())
        for k, s in enumerate(strategies):
            xs, mean, lo, hi = series[s]
            color, marker, label = _style(s)
            zero = bool(len(mean)) and np.all(mean == 0)
            if bands and not zero:
                ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
            (line,) = ax.plot(xs, mean, color=color, marker=marker, markevery=every[s],
                              linestyle="-" if k % 2 == 0 else (0, (4, 1.5)), label=label)
            handles.setdefault(label, line)
        _set_x(ax, x)
        _symlog_y(ax, top)
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        ax.set_title({"violations": "Live patch: violations", "dropped_tracer": "Tracer: dropped calls"}
                     .get(m, m))
    # one legend for both panels, below them: inside a panel it would cover data
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncols=3, handlelength=2.6,
               columnspacing=1.6)
    if title:
        fig.suptitle(title)
    return fig


# -- figure 3: heatmap --------------------------------------------------------------------------

@_styled
def heatmap(frame, metrics=("violations", "dropped_tracer"), strategy="skip", size="wide_tall"):
    """Per-patch means of *strategy* over CPUs (rows) x sync-round latency (columns).

    One panel per metric, logarithmic colour scale, each with its colour
    bar. Cells are drawn at their grid values (no interpolation).
    """
    from matplotlib.colors import LogNorm

    metrics = list(metrics)
    _need(frame, ["strategy", "cpus", "sync_round_ns"] + [f"{m}_mean" for m in metrics], "heatmap")
    d = frame[frame["strategy"] == strategy]
    if d.empty:
        raise ConfigError(f"strategy: the frame has no rows for {strategy!r}")
    fig, axes = new_figure(size, 1, len(metrics))
    cpus = np.sort(d["cpus"].unique())
    rounds = np.sort(d["sync_round_ns"].unique())
    for ax, m in zip(axes[0], metrics):
        grid = (d.pivot_table(index="cpus", columns="sync_round_ns", values=f"{m}_mean", aggfunc="mean")
                .reindex(index=cpus, columns=rounds).to_numpy())
        positive = grid[grid > 0]
        norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
        masked = np.ma.masked_where(~(grid > 0), grid)
        mesh = ax.pcolormesh(np.arange(len(rounds) + 1), np.arange(len(cpus) + 1), masked,
                             cmap="viridis", norm=norm, shading="flat")
        ax.set_xticks(np.arange(len(rounds)) + 0.5, [_eng(float(f"{r / 1e3:.3g}")) for r in rounds])
        ax.set_yticks(np.arange(len(cpus)) + 0.5, [str(c) for c in cpus])
        if len(rounds) > 9:  # label every other column: the labels must not collide
            for i, lab in enumerate(ax.get_xticklabels()):
                lab.set_visible(i % 2 == 0)
        ax.set_xlabel(_X["sync_round_ns"][0])
        ax.set_ylabel("CPUs")
        ax.grid(False)
        ax.set_title(f"{_style(strategy)[2]}: {METRIC_LABELS[m].splitlines()[0]}")
        cb = fig.colorbar(mesh, ax=ax, pad=0.02, fraction=0.06)
        cb.set_label(METRIC_LABELS[m].splitlines()[0])
        cb.ax.tick_params(labelsize=6.5)
    return fig


# -- figure 4: batching and scale --------------------------------------------------------------

_PROTOCOL_STYLE = {"per_site": (OKABE_ITO["vermillion"], "o", "one protocol per site"),
                   "batched": (OKABE_ITO["blue"], "s", "one batch")}


@_styled
def batching(frame, anchor=None, size="grid"):
    """Per-site vs batched breakpoint protocol over the number of sites.

    Four panels: IPI sync rounds per update, update (patch) duration,
    trapped calls per update, and the batched/per-site ratio of trapped
    calls. *anchor* (default :data:`workbench.race.timing.BRISTOT`) is marked:
    Bristot's 24-CPU, 56-site measurement (168 vs 3 IPIs, 57 vs 1.4 ms,
    ~10% fewer int3 hits batched).
    """
    from workbench.race.timing import BRISTOT

    anchor = anchor or BRISTOT
    _need(frame, ["protocol", "n_sites", "ipis_mean", "patch_ns_mean", "trapped_mean",
                  "trapped_lo", "trapped_hi"], "batching")
    fig, axes = new_figure(size, 2, 2)
    ax_ipi, ax_time, ax_trap, ax_ratio = axes.ravel()
    by = {p: frame[frame["protocol"] == p].sort_values("n_sites") for p in ("per_site", "batched")}
    for p, d in by.items():
        if d.empty:
            raise ConfigError(f"batching: the frame has no {p} rows")
        color, marker, label = _PROTOCOL_STYLE[p]
        n = d["n_sites"].to_numpy()
        ax_ipi.plot(n, d["ipis_mean"], color=color, marker=marker, label=label)
        ax_time.plot(n, d["patch_ns_mean"] / 1e6, color=color, marker=marker, label=label)
        ax_trap.fill_between(n, d["trapped_lo"].clip(lower=1e-12), d["trapped_hi"], color=color,
                             alpha=0.18, linewidth=0)
        ax_trap.plot(n, d["trapped_mean"], color=color, marker=marker, label=label)
    merged = by["per_site"].merge(by["batched"], on="n_sites", suffixes=("_p", "_b"))
    ratio = merged["trapped_mean_b"] / merged["trapped_mean_p"]
    ax_ratio.plot(merged["n_sites"], ratio, color=OKABE_ITO["bluish_green"], marker="^",
                  label="model (closed form)" if False else "model")
    star = dict(marker="*", markersize=10, color=OKABE_ITO["black"], linestyle="none", zorder=5)
    ax_ipi.plot([anchor.sites] * 2, [anchor.ipis_per_site, anchor.ipis_batched], label="Bristot, measured", **star)
    ax_time.plot([anchor.sites] * 2, [anchor.update_per_site_ns / 1e6, anchor.update_batched_ns / 1e6],
                 label="Bristot, measured", **star)
    ax_ratio.plot([anchor.sites], [anchor.hits_ratio], label="Bristot, measured", **star)
    for ax in (ax_ipi, ax_time, ax_trap):
        ax.set_yscale("log")
    ax_ratio.set_yscale("log")
    for ax in axes.ravel():
        _set_x(ax, "n_sites")
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

@_styled
def tradeoff(frame, size="wide_tall"):
    """Stall CPU-time per patch (x) against dropped invocations per patch (y).

    One line per strategy through its CPU counts (CPU count grows to the
    right); markers sit at the smallest, a middle and the largest CPU count,
    which are labelled on the lines that drop something and on ``spin``.
    Dropped = tracer + livepatch calls a handler should have run.
    ``stop_machine`` and ``spin`` buy zero drops with stall; the others
    stall only for the int3 handler. Alternate strategies have open markers,
    so coinciding lines (skip and emulate_old drop the same tracer calls)
    stay visible. The y axis is linear below 1.
    """
    _need(frame, ["strategy", "cpus", "stall_ns_mean", "dropped_tracer_mean", "dropped_livepatch_mean"],
          "tradeoff")
    fig, axes = new_figure(size, 1, 1)
    ax = axes[0, 0]
    strategies = _strategies(frame)
    series = {}
    for s in strategies:
        d = frame[frame["strategy"] == s].sort_values("cpus")
        series[s] = (d["cpus"].to_numpy(), d["stall_ns_mean"].to_numpy() / 1e6,
                     (d["dropped_tracer_mean"] + d["dropped_livepatch_mean"]).to_numpy())
    top = max(float(np.nanmax(v[2])) for v in series.values())
    labelled, placed = set(), []
    for k, s in enumerate(strategies):
        cpus, stall, dropped = series[s]
        color, marker, label = _style(s)
        marks = sorted({0, len(cpus) // 2, len(cpus) - 1})
        ax.plot(stall, dropped, color=color, marker=marker, label=label, markevery=marks,
                markerfacecolor=color if k % 2 == 0 else "none", markersize=4.5 if k % 2 == 0 else 6.5,
                markeredgewidth=1.1, linestyle="-" if k % 2 == 0 else (0, (4, 1.5)), zorder=3 + k % 2)
        key = (tuple(np.round(np.log10(np.maximum(stall[marks], 1e-12)), 1)), tuple(dropped[marks] > 0))
        if (np.any(dropped > 0) or s == "spin") and key not in labelled:
            labelled.add(key)  # one label per distinct line: coinciding lines are labelled once
            for i in marks:
                spot = (float(np.log10(max(stall[i], 1e-12))), float(np.log10(dropped[i] + 1)))
                if any(abs(spot[0] - x) < 1.2 and abs(spot[1] - y) < 0.5 for x, y in placed):
                    continue  # another line's label already sits here
                placed.append(spot)
                ax.annotate(f"{cpus[i]} CPU{'s' if cpus[i] > 1 else ''}", (stall[i], dropped[i]),
                            xytext=(0, 7), textcoords="offset points", ha="center", fontsize=6.5,
                            color=OKABE_ITO["black"])
    if "deadlocks_mean" in frame:  # a strategy that hangs the patch is not "zero drops"
        for s in strategies:
            d = frame[frame["strategy"] == s].sort_values("cpus")
            if (d["deadlocks_mean"] > 0).any():
                cpus, stall, dropped = series[s]
                ax.annotate(f"{_style(s)[2]}: the patch deadlocks\n({d['deadlocks_mean'].max():.3g} "
                            "deadlocked calls per patch)", (stall[-1], dropped[-1]), xytext=(-6, 16),
                            textcoords="offset points", ha="right", fontsize=6.5,
                            color=_style(s)[0])
    ax.set_xscale("log")
    _symlog_y(ax, top)
    ax.set_xlabel("stall CPU-time per patch, summed over CPUs (ms)")
    ax.set_ylabel("dropped handler calls per patch\n(tracer + livepatch)")
    cpus = series[strategies[0]][0]
    ax.set_title(f"Cost against correctness per patch, {cpus.min()} to {cpus.max()} CPUs")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), borderaxespad=0)
    return fig


# -- figure 6: closed form against Monte Carlo --------------------------------------------------

_SHORT = {"trapped": "trapped calls", "violations": "violations", "dropped_tracer": "dropped tracer calls",
          "stall_ns": "stall CPU-time (ns)", "patch_ns": "patch duration (ns)", "ipis": "IPI rounds",
          "window_ns": "int3 window (ns)", "dropped_livepatch": "dropped livepatch calls"}

@_styled
def closed_vs_monte_carlo(frame, metrics=("trapped", "violations", "dropped_tracer", "stall_ns",
                                          "patch_ns"), size="wide_tall"):
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
    from workbench.race.experiment import long_metrics

    _need(frame, [f"{m}_{s}" for m in metrics for s in ("mean", "se", "cf")], "closed_vs_monte_carlo")
    long = long_metrics(frame, metrics)
    fig, axes = new_figure(size, 1, 2)
    ax, hx = axes[0]
    colours = [OKABE_ITO[c] for c in ("vermillion", "blue", "bluish_green", "orange", "reddish_purple")]
    markers = ["o", "s", "^", "D", "v"]
    zs = []
    for (m, c, mk) in zip(metrics, colours, markers):
        d = long[(long["metric"] == m) & (long["cf"] > 0) & (long["se"] > 0)]
        if d.empty:
            continue
        ratio = d["mean"] / d["cf"]
        ax.errorbar(d["cf"], ratio, yerr=1.96 * d["se"] / d["cf"], linestyle="none", marker=mk, color=c,
                    alpha=0.75, markersize=3.5, elinewidth=0.6, capsize=0, label=_SHORT.get(m, m))
        zs.append(((d["mean"] - d["cf"]) / d["se"]).to_numpy())
    ax.axhline(1.0, color=OKABE_ITO["grey"], linewidth=0.8, zorder=0)
    ax.set_xscale("log")
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


# -- figure 7: the emulator's outcome table -----------------------------------------------------

_CLASS_COLOUR = {
    "correct": "#CDEBE2",          # a light tint of bluish green
    "drops": "#F6D79A",       # a light tint of orange
    "violation": OKABE_ITO["vermillion"],
    "crash": "#3A3A3A",
    "deadlock": OKABE_ITO["reddish_purple"],
    "never traps": "#EEEEEE",
}
_CLASS_TEXT = {"correct": "black", "drops": "black", "violation": "white", "crash": "white",
               "deadlock": "black", "never traps": "black"}


def _cell(row, compact=False):
    """(class, text) of one outcome-table row (per-trapped-call means); *compact*
    puts a fraction on a line of its own (narrow cells)."""
    if row is None:
        return "never traps", "never traps\n(no int3 window)"
    parts, cls = [], "correct"
    names = (("crash", "crash"), ("deadlock", "deadlock"), ("violation", "violation"),
             ("dropped_livepatch", "drops livepatch"), ("dropped_tracer", "drops tracer"),
             ("spurious", "spurious call"))
    for col, text in names:
        v = float(row.get(col, 0))
        if v > 0:
            sep = "\n" if compact else " "
            parts.append(text if abs(v - 1) < 1e-9 else f"{text}{sep}×{v:.2f}" if round(v, 2) < 1
                         else f"{text}{sep}×{v:.3f}")
            if cls == "correct":
                cls = {"crash": "crash", "deadlock": "deadlock", "violation": "violation"}.get(col, "drops")
    if float(row.get("delay_traps", 0)) > 0 and float(row.get("deadlock", 0)) < 0.5:
        parts.append(f"re-traps {float(row['delay_traps']):.0f}×")
    text = "\n".join(parts[:3]) if parts else "correct"
    return cls, text + f"\n(n={int(row['n_trapped'])})"


@_styled
def outcome_grid(table, entries=("v5.1", "v5.3"), strategies=STRATEGY_ORDER,
                 site_kinds=("livepatched", "ordinary"), size="grid"):
    """The emulator's per-trapped-call outcomes: strategy (rows) x site kind (columns).

    One panel per kernel int3 entry (v5.1: pt_regs on the interrupted
    stack; v5.3: with the stack gap). Each cell names what a trapped call
    did (correct, drops, violation, crash, deadlock, and spin's re-traps)
    and is coloured by the worst of them; ``n`` is the number of trapped
    calls (weighted schedules) behind it. A strategy with no row never
    traps. A table of several scenarios gets one column per (scenario,
    site kind), scenarios in the table's order.
    """
    from matplotlib.patches import Patch

    _need(table, ["entry", "strategy", "site_kind", "n_trapped", "violation", "dropped_tracer",
                  "dropped_livepatch", "spurious", "crash"], "outcome_grid")
    fig, axes = new_figure(size, 1, len(entries), sharey=True)
    scenarios = list(dict.fromkeys(table["scenario"])) if "scenario" in table else [None]
    scen = ", ".join(sorted(s for s in scenarios if s)) if len(scenarios) == 1 else ""
    columns = [(sc, k) for sc in scenarios for k in site_kinds]
    for ax, entry in zip(axes[0], entries):
        t = table[table["entry"] == entry]
        ax.set_xlim(0, len(columns))
        ax.set_ylim(len(strategies), 0)
        ax.grid(False)
        for r, s in enumerate(strategies):
            for c, (sc, k) in enumerate(columns):
                rows = t[(t["strategy"] == s) & (t["site_kind"] == k)]
                if sc is not None:
                    rows = rows[rows["scenario"] == sc]
                if len(rows) > 1:  # several trap sites: weight by trapped calls
                    w = rows["n_trapped"].to_numpy(float)
                    row = {col: float(np.average(rows[col].astype(float), weights=w))
                           for col in ("violation", "dropped_tracer", "dropped_livepatch", "spurious",
                                       "crash", "deadlock", "delay_traps") if col in rows}
                    row["n_trapped"] = int(w.sum())
                else:
                    row = rows.iloc[0].to_dict() if len(rows) else None
                cls, text = _cell(row, compact=len(columns) > 2)
                ax.add_patch(_rect(c, r, _CLASS_COLOUR[cls]))
                ax.text(c + 0.5, r + 0.5, text, ha="center", va="center",
                        fontsize=6.5 if len(columns) <= 2 else 5.0,
                        color=_CLASS_TEXT[cls], linespacing=1.15)
        ax.set_xticks(np.arange(len(columns)) + 0.5,
                      [f"{k} site" if len(scenarios) == 1 else f"{_SCENARIO_SHORT.get(sc, sc)}\n{k}"
                       for sc, k in columns], fontsize=None if len(columns) <= 2 else 5.5)
        ax.xaxis.set_ticks_position("top")
        ax.xaxis.set_label_position("top")
        ax.tick_params(length=0)
        ax.set_yticks(np.arange(len(strategies)) + 0.5, [_style(s)[2] for s in strategies])
        ax.set_title(f"int3 entry {entry}" + (" (pt_regs on the interrupted stack)" if entry == "v5.1"
                                              else " (with the stack gap)" if entry == "v5.3" else ""),
                     pad=4)
        ax.set_xlabel("site kind of the trapped call")
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0][0].set_ylabel("int3 handler strategy")
    handles = [Patch(facecolor=_CLASS_COLOUR[k], edgecolor="#777777", linewidth=0.4, label=k)
               for k in ("correct", "drops", "violation", "crash", "deadlock", "never traps")]
    fig.legend(handles=handles, loc="outside lower center", ncols=6,
               title=f"worst outcome of a trapped call (scenario {scen}, emulated)" if scen
               else "worst outcome of a trapped call (emulated)")
    return fig


#: short column headings of the scenarios in figure 7
_SCENARIO_SHORT = {"seed": "seed:\ntracer enabled", "tracer_add_livepatch": "tracer running:\nlivepatch added"}


def _rect(c, r, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((c + 0.03, r + 0.04), 0.94, 0.92, facecolor=colour, edgecolor="#777777",
                     linewidth=0.4)
