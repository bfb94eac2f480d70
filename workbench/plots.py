"""Figures of the workbench, and the one :func:`save` that writes them.

Every figure function takes a tidy frame (a :func:`workbench.sweep.sweep`
result or the emulator's outcome table) and returns a matplotlib
``Figure`` of a fixed size (:data:`SIZES`, inches). Strategies always get
the same colour from the Okabe-Ito palette (safe for the common forms of
colour blindness) *and* the same marker, so a figure reads in grey too.

:func:`save` writes SVG, PDF and PNG whose bytes depend only on the figure:
a fixed SVG hash salt, no dates, a fixed creator string and PNG metadata,
and files replaced atomically. :func:`text_overlaps` lists text that
collides (tick labels, labels, legends, annotations); the figures job and
the tests require it to be empty.

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

import functools
import io
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator, LogLocator

from .errors import ConfigError, check_choice

__all__ = [
    "OKABE_ITO", "STRATEGY_STYLE", "STRATEGY_ORDER", "SIZES", "FORMATS", "METRIC_LABELS",
    "PlotFigure", "style", "new_figure", "save", "text_overlaps", "drops", "heatmap", "batching", "tradeoff",
    "closed_vs_monte_carlo", "outcome_grid", "figure_check",
]

#: Okabe & Ito (2008), "Color Universal Design"
OKABE_ITO = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
    "grey": "#999999",
}

STRATEGY_ORDER = ("skip", "emulate_regs_caller", "emulate_new", "emulate_old", "spin", "stop_machine")

#: strategy -> (colour, marker, legend label); yellow is left out: too pale on white
STRATEGY_STYLE = {
    "skip": (OKABE_ITO["vermillion"], "o", "skip"),
    "emulate_regs_caller": (OKABE_ITO["blue"], "s", "emulate ftrace_regs_caller"),
    "emulate_new": (OKABE_ITO["bluish_green"], "^", "emulate new insn"),
    "emulate_old": (OKABE_ITO["orange"], "D", "emulate old insn"),
    "spin": (OKABE_ITO["reddish_purple"], "v", "spin"),
    "stop_machine": (OKABE_ITO["black"], "X", "stop_machine"),
}

#: figure sizes in inches (width, height)
SIZES = {"single": (3.5, 2.6), "wide": (7.0, 2.9), "wide_tall": (7.0, 3.6), "grid": (7.0, 5.4)}

FORMATS = ("svg", "pdf", "png")
PNG_DPI = 200
_CREATOR = "int3-workbench (matplotlib)"

#: metric -> axis label (with units)
METRIC_LABELS = {
    "violations": "violations per patch\n(live-patched call ran old body)",
    "dropped_tracer": "dropped tracer calls per patch",
    "dropped_livepatch": "dropped livepatch calls per patch",
    "trapped": "trapped calls per patch",
    "stall_ns": "stall CPU-time per patch (ms)",
    "patch_ns": "patch duration (ms)",
    "ipis": "IPI sync rounds per patch",
    "spurious": "spurious calls per patch",
    "crashes": "crashes per patch",
    "window_ns": "int3 window (ms)",
}

_RC = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.linewidth": 0.6, "lines.linewidth": 1.2,
    "lines.markersize": 4.5, "grid.linewidth": 0.4, "grid.alpha": 0.5, "axes.grid": True,
    "legend.frameon": False, "svg.hashsalt": "int3-workbench", "svg.fonttype": "path",
    "pdf.fonttype": 42, "figure.dpi": 100, "savefig.dpi": PNG_DPI, "axes.spines.top": False,
    "axes.spines.right": False, "figure.constrained_layout.use": True,
    "path.simplify": False,  # simplification may depend on the renderer: keep every vertex
}


@contextmanager
def style():
    """The workbench's matplotlib settings, for figures made inside the block."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


def _styled(fn):
    """Run a figure function inside :func:`style`: rcParams are read as artists are made."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        with style():
            return fn(*args, **kw)
    return wrapper


class PlotFigure(Figure):
    """A Figure that shows itself in Jupyter without pyplot (as a PNG)."""

    def _repr_png_(self):
        buf = io.BytesIO()
        with style():
            self.savefig(buf, format="png", dpi=110)
        return buf.getvalue()


def new_figure(size="wide", nrows=1, ncols=1, **kw):
    """``(fig, axes)`` of a fixed *size* (a :data:`SIZES` name), constrained layout.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot state), so it is
    safe in workers and widgets. Raises :class:`ConfigError` for an unknown size.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    check_choice("size", size, SIZES)
    with style():
        fig = PlotFigure(figsize=SIZES[size], layout="constrained")
        FigureCanvasAgg(fig)  # a canvas of its own: draws without pyplot or a display
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.06, hspace=0.06)
    return fig, axes


def save(fig, name, outdir=None, formats=FORMATS) -> list[Path]:
    """Write *fig* as ``<outdir>/<name>.svg/.pdf/.png`` (default ``data/figures``).

    Output is byte-stable: the SVG hash salt is fixed and its date removed,
    the PDF has no creation/modification date and a fixed creator and
    producer, the PNG carries only a fixed ``Software`` entry, and fonts are
    drawn as paths (SVG) or embedded (PDF). Each file is written to a
    temporary name and renamed, so a reader never sees half a figure.
    Returns the paths written. Raises :class:`ConfigError` for an unknown format.
    """
    from .paths import data_dir

    outdir = Path(outdir) if outdir is not None else data_dir() / "figures"
    outdir.mkdir(parents=True, exist_ok=True)
    meta = {
        "svg": {"Date": None, "Creator": _CREATOR},
        "pdf": {"CreationDate": None, "ModDate": None, "Creator": _CREATOR, "Producer": _CREATOR},
        "png": {"Software": _CREATOR},
    }
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    paths = []
    with style():
        engine = fig.get_layout_engine()
        if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
            # lay out once, then keep it: constrained layout would otherwise run
            # again for every format (most of the cost of saving)
            fig.canvas.draw()
            fig.set_layout_engine("none")
        for fmt in formats:
            check_choice("format", fmt, FORMATS)
            path = outdir / f"{name}.{fmt}"
            tmp = outdir / f".{name}.{os.getpid()}.{fmt}"
            fig.savefig(tmp, format=fmt, metadata=meta[fmt], dpi=PNG_DPI)
            os.replace(tmp, path)
            paths.append(path)
    return paths


# -- checks: text that collides, axes without labels ----------------------------------------

def _drawn_texts(fig):
    """(label, bbox) of every visible, non-empty text actually drawn."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    skip = set()
    out = []
    for ax in fig.axes:
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            # compare in the axis' scale (log, symlog), where "inside the view" is linear
            tr = axis.get_transform()
            with np.errstate(all="ignore"):
                lo, hi = sorted(float(v) for v in tr.transform(np.array([lo, hi])))
            tol = (hi - lo) * 1e-9

            def inside(loc):
                with np.errstate(all="ignore"):
                    v = float(tr.transform(np.array([loc]))[0])
                return np.isfinite(v) and lo - tol <= v <= hi + tol

            # get_*_ticks() returns one tick per current location; spare Tick
            # objects (majorTicks beyond those) keep stale labels and are not drawn
            drawn = {id(lab) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                     if inside(tick.get_loc()) for lab in (tick.label1, tick.label2)}
            skip.update(id(lab) for tick in axis.majorTicks + axis.minorTicks
                        for lab in (tick.label1, tick.label2) if id(lab) not in drawn)
    for t in fig.findobj(Text):
        if id(t) in skip or not t.get_visible() or not t.get_text().strip():
            continue
        if t.axes is not None and not t.get_figure():
            continue
        bb = t.get_window_extent(renderer)
        if bb.width <= 0 or bb.height <= 0:
            continue
        out.append((t.get_text(), bb))
    return out


def text_overlaps(fig, pad=0.5) -> list[tuple[str, str]]:
    """Pairs of drawn texts of *fig* whose boxes overlap (by more than *pad* px).

    Also reports text that sticks out of the figure, paired with
    ``"<figure edge>"``.
    """
    texts = _drawn_texts(fig)
    W, H = fig.bbox.width, fig.bbox.height
    bad = []
    for i, (a, ba) in enumerate(texts):
        if ba.x0 < -pad or ba.y0 < -pad or ba.x1 > W + pad or ba.y1 > H + pad:
            bad.append((a, "<figure edge>"))
        for b, bb in texts[i + 1:]:
            if (min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > pad and
                    min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > pad):
                bad.append((a, b))
    return bad


def figure_check(fig) -> list[str]:
    """Problems a published figure must not have: colliding text, unlabelled
    axes of plotted data, several plotted series and no legend."""
    problems = [f"text overlaps: {a!r} / {b!r}" for a, b in text_overlaps(fig)]
    has_legend = bool(fig.legends) or any(ax.get_legend() for ax in fig.axes)
    for ax in fig.axes:
        if not (ax.lines or ax.collections or ax.images or ax.patches):
            continue
        if ax.get_label() == "<colorbar>":
            if not ax.get_ylabel() and not ax.get_xlabel():
                problems.append("colorbar without a label")
            continue
        if not ax.get_xlabel() and not ax.xaxis.get_ticklabels() and ax.xaxis.get_visible():
            problems.append(f"axes {ax.get_title()!r}: no x label")
        if not ax.get_ylabel() and ax.get_subplotspec() and ax.get_subplotspec().is_first_col():
            problems.append(f"axes {ax.get_title()!r}: no y label")
        if len([ln for ln in ax.lines if not ln.get_label().startswith("_")]) > 1 and not has_legend:
            problems.append(f"axes {ax.get_title()!r}: several series, no legend")
    return problems


# -- helpers ----------------------------------------------------------------------------------

def _strategies(frame):
    present = list(dict.fromkeys(frame["strategy"]))
    return [s for s in STRATEGY_ORDER if s in present] + [s for s in present if s not in STRATEGY_ORDER]


def _style(strategy):
    return STRATEGY_STYLE.get(strategy, (OKABE_ITO["grey"], "P", strategy))


def _need(frame, columns, what):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: frame lacks columns {', '.join(missing)}; pass a race sweep result")
    if not len(frame):
        raise ConfigError(f"{what}: the frame is empty")


def _stagger(series):
    """markevery per series so that coinciding lines each show their markers.

    Series whose values agree within 2% everywhere form a group; the k-th of
    a group of g shows markers at points k, k+g, k+2g, ...
    """
    keys = list(series)
    groups = []
    for k in keys:
        y = np.asarray(series[k], float)
        for g in groups:
            z = np.asarray(series[g[0]], float)
            if y.shape == z.shape and np.allclose(y, z, rtol=0.02, atol=1e-9, equal_nan=True):
                g.append(k)
                break
        else:
            groups.append([k])
    every = {}
    for g in groups:
        for j, k in enumerate(g):
            every[k] = (j, len(g)) if len(g) > 1 else None
    return every


_X = {
    "cpus": ("CPUs", 1.0, "log2"),
    "sync_round_ns": ("mean IPI sync round on 24 CPUs (µs)", 1e-3, "log10"),
    "tail_functions": ("call sites patched", 1.0, "log10"),
    "n_sites": ("call sites patched", 1.0, "log10"),
}


def _set_x(ax, x):
    label, _, kind = _X.get(x, (x, 1.0, "linear"))
    ax.set_xlabel(label)
    if kind == "log2":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    elif kind == "log10":
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(10))
        ax.xaxis.set_major_formatter(FuncFormatter(_eng))


def _eng(v, _=None):
    """1, 10, 100, 1k, 10k ... for log axes."""
    if v <= 0:
        return "0"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _symlog_y(ax, top):
    """A y axis from 0 to *top*: linear below 1, logarithmic above (zeros stay visible)."""
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    ax.set_ylim(-0.45, max(top, 10) * 3)  # room below 0 for the markers of lines on 0
    exps = np.log10(max(top, 10) * 3)
    step = 2 if exps > 6 else 1  # at most ~5 labels: they must not collide
    ax.yaxis.set_major_locator(_DecadeLocator(step))
    ax.yaxis.set_major_formatter(FuncFormatter(_eng))
    ax.yaxis.set_minor_locator(_DecadeLocator(1))


class _DecadeLocator(Locator):
    """0 and every *step*-th power of ten inside the view (for symlog axes)."""

    def __init__(self, step=1):
        self.step = step

    def __call__(self):
        lo, hi = self.axis.get_view_interval()
        return self.tick_values(lo, hi)

    def tick_values(self, vmin, vmax):
        top = int(np.floor(np.log10(max(vmax, 1))))
        vals = [0.0] + [10.0 ** e for e in range(0, top + 1) if e % self.step == 0]
        return [v for v in vals if vmin <= v <= vmax]


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
    calls. *anchor* (default :data:`workbench.timing.BRISTOT`) is marked:
    Bristot's 24-CPU, 56-site measurement (168 vs 3 IPIs, 57 vs 1.4 ms,
    ~10% fewer int3 hits batched).
    """
    from .timing import BRISTOT

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
    labelled = set()
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
                ax.annotate(f"{cpus[i]} CPU{'s' if cpus[i] > 1 else ''}", (stall[i], dropped[i]),
                            xytext=(0, 7), textcoords="offset points", ha="center", fontsize=6.5,
                            color=OKABE_ITO["black"])
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
    from .sweep import long_metrics

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
    "never traps": "#EEEEEE",
}
_CLASS_TEXT = {"correct": "black", "drops": "black", "violation": "white", "crash": "white",
               "never traps": "black"}


def _cell(row):
    """(class, text) of one outcome-table row (per-trapped-call means)."""
    if row is None:
        return "never traps", "never traps\n(no int3 window)"
    parts, cls = [], "correct"
    names = (("crash", "crash"), ("violation", "violation"), ("dropped_livepatch", "drops livepatch"),
             ("dropped_tracer", "drops tracer"), ("spurious", "spurious call"))
    for col, text in names:
        v = float(row[col])
        if v > 0:
            parts.append(text if abs(v - 1) < 1e-9 else f"{text} ×{v:.2f}")
            if cls == "correct":
                cls = {"crash": "crash", "violation": "violation"}.get(col, "drops")
    if float(row.get("delay_traps", 0)) > 0:
        parts.append(f"re-traps {float(row['delay_traps']):.0f}×")
    text = "\n".join(parts[:3]) if parts else "correct"
    return cls, text + f"\n(n={int(row['n_trapped'])})"


@_styled
def outcome_grid(table, entries=("v5.1", "v5.3"), strategies=STRATEGY_ORDER,
                 site_kinds=("livepatched", "ordinary"), size="grid"):
    """The emulator's per-trapped-call outcomes: strategy (rows) x site kind (columns).

    One panel per kernel int3 entry (v5.1: pt_regs on the interrupted
    stack; v5.3: with the stack gap). Each cell names what a trapped call
    did (correct, drops, violation, crash, and spin's re-traps) and is
    coloured by the worst of them; ``n`` is the number of trapped calls
    (weighted schedules) behind it. A strategy with no row never traps.
    """
    from matplotlib.patches import Patch

    _need(table, ["entry", "strategy", "site_kind", "n_trapped", "violation", "dropped_tracer",
                  "dropped_livepatch", "spurious", "crash"], "outcome_grid")
    fig, axes = new_figure(size, 1, len(entries), sharey=True)
    scen = ", ".join(sorted(table["scenario"].unique())) if "scenario" in table else ""
    for ax, entry in zip(axes[0], entries):
        t = table[table["entry"] == entry]
        ax.set_xlim(0, len(site_kinds))
        ax.set_ylim(len(strategies), 0)
        ax.grid(False)
        for r, s in enumerate(strategies):
            for c, k in enumerate(site_kinds):
                rows = t[(t["strategy"] == s) & (t["site_kind"] == k)]
                if len(rows) > 1:  # several trap sites: weight by trapped calls
                    w = rows["n_trapped"].to_numpy(float)
                    row = {col: float(np.average(rows[col].astype(float), weights=w))
                           for col in ("violation", "dropped_tracer", "dropped_livepatch", "spurious",
                                       "crash", "delay_traps") if col in rows}
                    row["n_trapped"] = int(w.sum())
                else:
                    row = rows.iloc[0].to_dict() if len(rows) else None
                cls, text = _cell(row)
                ax.add_patch(_rect(c, r, _CLASS_COLOUR[cls]))
                ax.text(c + 0.5, r + 0.5, text, ha="center", va="center", fontsize=6.5,
                        color=_CLASS_TEXT[cls], linespacing=1.15)
        ax.set_xticks(np.arange(len(site_kinds)) + 0.5, [f"{k} site" for k in site_kinds])
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
               for k in ("correct", "drops", "violation", "crash", "never traps")]
    fig.legend(handles=handles, loc="outside lower center", ncols=5,
               title=f"worst outcome of a trapped call (scenario {scen}, emulated)" if scen else None)
    return fig


def _rect(c, r, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((c + 0.03, r + 0.04), 0.94, 0.92, facecolor=colour, edgecolor="#777777",
                     linewidth=0.4)
