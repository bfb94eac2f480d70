"""How every figure of the workbench looks, is written and is checked.

The look: strategies always get the same colour from the Okabe-Ito palette
(:data:`OKABE_ITO`, safe for the common forms of colour blindness) *and* the
same marker (:data:`STRATEGY_STYLE`, in :data:`STRATEGY_ORDER`), so a figure
reads in grey too; figures have fixed sizes (:data:`SIZES`, inches) and one
set of matplotlib settings (:func:`style`); metrics have one axis label
each (:data:`METRIC_LABELS`). :func:`new_figure` makes a figure without
pyplot, and the helpers at the end give the figures of
:mod:`workbench.figures.plots` and :mod:`workbench.figures.outcome_plots` their
column check, shared axis scales (log CPU counts, symlog
counts that keep zeros visible) and markers that stay visible on
coinciding lines.

:func:`save` writes SVG, PDF and PNG whose bytes depend only on the figure:
a fixed SVG hash salt, no dates, a fixed creator string and PNG metadata,
and files replaced atomically. :func:`text_overlaps` lists text that
collides (tick labels, labels, legends, annotations) and
:func:`figure_check` adds unlabelled axes and missing legends; the figures
job and the tests require both to be empty.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, NullFormatter

from workbench.base.errors import ConfigError, check_choice
from workbench.emulate.scenario import load_scenario
from workbench.base.paths import data_dir
from workbench.base.store import write_atomic
from workbench.base.vocabulary import FORMATS, STRATEGIES
from workbench.base.units import human_count, human_ns

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "DecadeLocator", "METRIC_LABELS", "OKABE_ITO", "PNG_DPI", "PlotFigure", "SIZES", "STRATEGY_ORDER",
    "STRATEGY_STYLE", "X_AXES", "caption", "conditions", "eng_tick", "figure_check", "log_x", "marker_stagger",
    "need_columns", "new_figure", "render", "save", "set_x", "strategies_in", "strategy_style", "style", "styled",
    "symlog_y", "text_overlaps", "write_files",
]

#: Okabe & Ito (2008), "Color Universal Design"
OKABE_ITO = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
    "grey": "#999999",
}

STRATEGY_ORDER = STRATEGIES

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
SIZES = {"single": (3.5, 2.6), "wide": (7.0, 2.9), "wide_tall": (7.0, 3.6), "grid": (7.0, 5.4),
         "grid_tall": (7.0, 9.6)}

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
def style() -> Iterator[None]:
    """The workbench's matplotlib settings, for figures made inside the block."""
    import matplotlib  # start-up: matplotlib, only when a figure is drawn

    with matplotlib.rc_context(_RC):
        yield


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a figure function inside :func:`style`: rcParams are read as artists are made."""
    @functools.wraps(fn)
    def wrapper(*args, **kw) -> Figure:
        with style():
            return fn(*args, **kw)
    return wrapper


class PlotFigure(Figure):
    """A Figure that shows itself in Jupyter without pyplot (as a PNG)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        with style():
            self.savefig(buf, format="png", dpi=110)
        return buf.getvalue()


def new_figure(size: str = "wide", nrows: int = 1, ncols: int = 1, **kw) -> tuple[PlotFigure, np.ndarray]:
    """``(fig, axes)`` of a fixed *size* (a :data:`SIZES` name), constrained layout.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot state), so it is
    safe in workers and widgets. Raises :class:`ConfigError` for an unknown size.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # start-up: matplotlib, only when a figure is drawn

    check_choice("size", size, SIZES)
    with style():
        fig = PlotFigure(figsize=SIZES[size], layout="constrained")
        FigureCanvasAgg(fig)  # a canvas of its own: draws without pyplot or a display
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.06, hspace=0.06)
    return fig, axes


def save(fig: Figure, name: str, outdir: Path | str | None = None, formats: Iterable[str] = FORMATS,
         provenance: dict | None = None, caption_text: str | None = None) -> list[Path]:
    """Write *fig* as ``<outdir>/<name>.svg/.pdf/.png`` (default ``data/figures``).

    *provenance* (a :func:`workbench.base.provenance.provenance` record) and
    *caption_text* go into each file's metadata and into ``<name>.json``
    beside it (:func:`render`). Output is byte-stable (:func:`render`). Each file is written atomically
    (:func:`workbench.base.store.write_atomic`), so a reader never sees half
    a figure. Returns the paths written. Raises :class:`ConfigError` for an
    unknown format or an unwritable directory.
    """
    outdir = Path(outdir) if outdir is not None else data_dir() / "figures"
    record = None if provenance is None else {**provenance, "figure": name}
    return write_files(outdir, name, render(fig, formats, record, caption_text))


def write_files(outdir: Path | str, name: str, rendered: dict[str, bytes]) -> list[Path]:
    """Write ``<outdir>/<name>.<format>`` for each of *rendered* (format -> bytes); the paths."""
    return [write_atomic(Path(outdir) / f"{name}.{fmt}", data, what="figure") for fmt, data in rendered.items()]


def render(fig: Figure, formats: Iterable[str] = FORMATS, provenance: dict | None = None,
           caption_text: str | None = None) -> dict[str, bytes]:
    """*fig* as bytes per format (format -> bytes), written nowhere.

    *provenance* (a :func:`workbench.base.provenance.provenance` record) and
    *caption_text* go into each format's metadata (PNG text chunks
    ``Description`` and ``provenance``, PDF ``Subject`` and ``Keywords``,
    SVG ``Description``) and, as the ``json`` entry, into a record that
    ``pandas.read_json(..., typ="series")`` reads back.

    Byte-stable: the SVG hash salt is fixed and its date removed, the PDF
    has no creation/modification date and a fixed creator and producer, the
    PNG carries only a fixed ``Software`` entry, and fonts are drawn as paths
    (SVG) or embedded (PDF). A worker process renders; only the process
    that owns the outputs writes them.
    """
    meta = {
        "svg": {"Date": None, "Creator": _CREATOR},
        "pdf": {"CreationDate": None, "ModDate": None, "Creator": _CREATOR, "Producer": _CREATOR},
        "png": {"Software": _CREATOR},
    }
    record = None
    if provenance is not None or caption_text is not None:
        record = {**(provenance or {}), "caption": caption_text or ""}
        text = json.dumps(record, sort_keys=True)
        meta["svg"]["Description"] = f"{caption_text or ''} provenance: {text}"
        meta["pdf"].update(Subject=caption_text or "", Keywords=text)
        meta["png"].update(Description=caption_text or "", provenance=text)
    from matplotlib.layout_engine import PlaceHolderLayoutEngine  # start-up: matplotlib, only when saving

    out = {}
    with style():
        engine = fig.get_layout_engine()
        if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
            # lay out once, then keep it: constrained layout would otherwise run
            # again for every format (most of the cost of saving)
            fig.canvas.draw()
            fig.set_layout_engine("none")
        _fit_titles(fig)
        for fmt in formats:
            check_choice("format", fmt, FORMATS)
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, metadata=meta[fmt], dpi=PNG_DPI)
            out[fmt] = buf.getvalue()
    if record is not None:
        out["json"] = (json.dumps(record, sort_keys=True, indent=1) + "\n").encode()
    return out


def _fit_titles(fig: Figure, margin_in: float = 0.12) -> None:
    """Move a panel title that runs past the figure's side (at :data:`PNG_DPI`) back inside it.

    Constrained layout sizes panels by their titles' height only, so a title wider than its
    panel may reach the figure's edge; it is shifted sideways, still centred on its new x.
    """
    own = fig.get_dpi()
    fig.set_dpi(PNG_DPI)  # hinted glyphs come out wider there than at the screen's dpi
    try:
        renderer = fig.canvas.get_renderer()
        width, margin = fig.bbox.width, margin_in * fig.dpi
        for ax in fig.axes:
            for title in (ax.title, ax._left_title, ax._right_title):
                if not title.get_text() or not title.get_visible():
                    continue
                box = title.get_window_extent(renderer)
                shift = max(box.x1 - (width - margin), 0) or min(box.x0 - margin, 0)
                if shift and ax.bbox.width > 0:
                    x, y = title.get_position()
                    title.set_position((x - shift / ax.bbox.width, y))
    finally:
        fig.set_dpi(own)


#: constant columns named in a figure's conditions caption, with their formatting
_CONDITIONS = (
    ("scenario", None),  # _scenario_part: each scenario with its kernel (arch) tags
    ("batching", lambda v: f"batching {v}"),
    ("entry", None),  # _entry_part: one entry, or one per arch
    ("cpus", lambda v: f"{int(v)} CPUs"),
    ("sync_round_ns", lambda v: f"sync round {human_ns(v)} (24 CPUs)"),
    ("tail_functions", lambda v: f"{human_count(v)} tail sites"),
    ("trampolines", lambda v: "trampoline calls patched" if v else "no trampoline calls"),
    ("trials", lambda v: f"{human_count(v)} trials/point"),
)


def _kernel_tag(scenario: str, arch: str = "i386") -> str:
    """``real i386``, ``i386 sketch`` or ``real x86_64`` (workbench.emulate.scenario.KERNELS) of
    *scenario* on *arch*; ``?`` for a scenario not on disk."""
    try:
        return load_scenario(str(scenario)).kernel_on(str(arch))
    except ConfigError:  # a caption never fails on a scenario it cannot read
        return "?"


def _arches(frame: pd.DataFrame) -> np.ndarray:
    """Each row's arch: the ``arch`` column, i386 where it is missing (i386 rows written without one)."""
    if "arch" not in frame.columns:
        return np.full(len(frame), "i386", dtype=object)
    return frame["arch"].astype(object).where(frame["arch"].notna(), "i386").astype(str).to_numpy()


def _scenario_part(frame: pd.DataFrame) -> str:
    """``scenario S [kernel]`` or ``scenarios S [kernel, kernel] + T [kernel]``: every scenario of
    *frame* with the kernel it is on each of its arches (the arch is in the tag)."""
    tags: dict[str, set[str]] = {}
    for sc, a in sorted(set(zip(frame["scenario"].astype(str), _arches(frame), strict=True))):
        tags.setdefault(sc, set()).add(_kernel_tag(sc, a))
    items = [f"{sc} [{', '.join(sorted(t))}]" for sc, t in tags.items()]
    return ("scenario " if len(items) == 1 else "scenarios ") + " + ".join(items)


def _entry_part(frame: pd.DataFrame) -> str | None:
    """``entry E``, or ``entry E (arch) + F (arch)`` when each arch has one; None when an arch has several."""
    known = frame["entry"].notna().to_numpy()
    per: dict[str, set[str]] = {}
    for a, e in zip(_arches(frame)[known], frame["entry"][known].astype(str), strict=True):
        per.setdefault(a, set()).add(e)
    if not per or any(len(v) != 1 for v in per.values()):
        return None
    if len(per) == 1:
        return f"entry {next(iter(next(iter(per.values()))))}"
    return "entry " + " + ".join(f"{next(iter(v))} ({a})" for a, v in sorted(per.items()))


def conditions(frame: pd.DataFrame, provenance: dict | None = None) -> str:
    """One line naming what a figure held fixed, read from its data.

    Each of batching, CPUs, sync round, tail sites, trampolines and trials
    that has a single value in *frame* is named; the swept ones (the axes,
    the legend) are not. Every scenario is named with the kernel it is on
    (``real i386``, ``i386 sketch``, ``real x86_64``: its arch), and the
    int3 entry when each arch has one (``entry v5.2 (x86_64) + v5.3 (i386)``). The provenance's seed,
    quick/full grid and code version follow.
    """
    parts = []
    for col, fmt in _CONDITIONS:
        if col not in frame.columns or not frame[col].notna().any():
            continue
        if col == "scenario":  # with the kernel each is on, which names its arch
            parts.append(_scenario_part(frame))
        elif col == "entry":  # the int3 entry is each arch's own
            part = _entry_part(frame)
            if part:
                parts.append(part)
        else:
            vals = frame[col].dropna().unique()
            if len(vals) == 1:
                parts.append(fmt(vals[0]))
    if provenance:
        if int(provenance.get("seed", -1)) >= 0:
            parts.append(f"seed {provenance['seed']}")
        parts.append(f"{provenance.get('run', 'custom')} grid")
        parts.append(f"code {str(provenance.get('code_version', '?'))[:8]}")
    return "; ".join(parts)


def caption(fig: Figure, text: str) -> None:
    """Put *text* (a conditions caption) above the figure, small and grey, left-aligned.

    A caption wider than the figure is broken into lines at ``"; "``: its
    width depends on the glyphs of the code version it ends with, which must
    not decide whether the figure passes :func:`figure_check`. The width is
    measured at the figure's own dpi and at :data:`PNG_DPI`, where hinted
    glyphs come out a few percent wider.
    """
    if not text:
        return
    with style():
        title = fig.suptitle(text, x=0.005, ha="left", fontsize=6, color="#555555")
        own = fig.get_dpi()

        def fits(line):  # inside the figure's right edge at every dpi it is drawn at (px)
            title.set_text(line)
            try:
                for dpi in (own, PNG_DPI):
                    fig.set_dpi(dpi)
                    if title.get_window_extent(fig.canvas.get_renderer()).x1 > fig.bbox.width + 0.5:
                        return False
                return True
            finally:
                fig.set_dpi(own)

        if fits(text):
            return
        parts = text.split("; ")
        lines, line = [], parts[0]
        for part in parts[1:]:
            if fits(f"{line}; {part}"):
                line = f"{line}; {part}"
            else:
                lines.append(line + ";")
                line = part
        lines.append(line)
        # balance the last two lines: no provenance item ("code 39af720c") left alone on its own line
        while len(lines) > 1:
            head = lines[-2].rstrip(";").split("; ")
            moved = f"{head[-1]}; {lines[-1]}"
            if len(head) < 2 or len(moved) > len("; ".join(head[:-1])) or not fits(moved):
                break
            lines[-2:] = ["; ".join(head[:-1]) + ";", moved]
        title.set_text("\n".join(lines))


# -- checks: text that collides, axes without labels ----------------------------------------

def _drawn_texts(fig: Figure) -> list:
    """(label, bbox) of every visible, non-empty text actually drawn."""
    from matplotlib.text import Text  # start-up: matplotlib, only when a figure is drawn

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
                    v = float(tr.transform(np.array([loc]))[0])  # noqa: B023 -- called in this iteration only
                return np.isfinite(v) and lo - tol <= v <= hi + tol  # noqa: B023 -- called in this iteration only

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


def text_overlaps(fig: Figure, pad: float = 0.5) -> list[tuple[str, str]]:
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


def figure_check(fig: Figure) -> list[str]:
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


# -- shared by the figures: strategy order and look, axis scales ------------------------------

def need_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`ConfigError` naming figure *what* if *frame* lacks any of *columns* or is empty."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: frame lacks columns {', '.join(missing)}; pass a race sweep result")
    if not len(frame):
        raise ConfigError(f"{what}: the frame is empty")


def strategies_in(frame: pd.DataFrame) -> list[str]:
    """The strategies in *frame*'s ``strategy`` column: :data:`STRATEGY_ORDER` first, others as met."""
    present = list(dict.fromkeys(frame["strategy"]))
    return [s for s in STRATEGY_ORDER if s in present] + [s for s in present if s not in STRATEGY_ORDER]


def strategy_style(strategy: str) -> tuple[str, str, str]:
    """(colour, marker, legend label) of *strategy*; grey "P" and its own name when unknown."""
    return STRATEGY_STYLE.get(strategy, (OKABE_ITO["grey"], "P", strategy))


def marker_stagger(series: dict) -> dict:
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


#: x parameter -> (axis label, factor from the column's unit to the label's, scale: log2/log10);
#: ``sync_round_ns`` is in ns and shown in µs (factor 1e-3)
X_AXES = {
    "cpus": ("CPUs", 1.0, "log2"),
    # the parameter is the round's mean on the 24-CPU reference machine, whatever CPU count a
    # panel shows (rounds on more CPUs are longer, as the timing model says)
    "sync_round_ns": ("IPI sync round, mean on 24 CPUs (µs)", 1e-3, "log10"),
    "tail_functions": ("call sites patched", 1.0, "log10"),
    "n_sites": ("call sites patched", 1.0, "log10"),
}


def set_x(ax: Axes, x: str) -> None:
    """Label and scale *ax*'s x axis for parameter *x* as :data:`X_AXES` says (linear when unlisted)."""
    label, _, kind = X_AXES.get(x, (x, 1.0, "linear"))
    ax.set_xlabel(label)
    if kind == "log2":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    elif kind == "log10":
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(10))
        ax.xaxis.set_major_formatter(FuncFormatter(eng_tick))
        ax.xaxis.set_minor_formatter(NullFormatter())


def log_x(ax: Axes) -> None:
    """A log10 x axis with the workbench's tick labels (1, 10, 100, 1k, ... as everywhere)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(10))
    ax.xaxis.set_major_formatter(FuncFormatter(eng_tick))
    ax.xaxis.set_minor_formatter(NullFormatter())


def eng_tick(v: float, _=None) -> str:
    """Tick label of *v* (unitless, in the axis' own unit): 1, 10, 100, 1k, 10k ... for log axes.

    Takes matplotlib's ``FuncFormatter`` (value, position) arguments.
    """
    if v <= 0:
        return "0"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def symlog_y(ax: Axes, top: float) -> None:
    """A y axis from 0 to *top*: linear below 1, logarithmic above (zeros stay visible).

    The axis ends just above the first labelled power of ten at or above
    *top*, so no data sits above the last labelled tick.
    """
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    e = int(np.ceil(np.log10(max(top, 10))))
    step = 2 if e > 6 else 1  # at most ~5 labels: they must not collide
    e += e % step  # the top label is a multiple of the step
    ax.set_ylim(-0.45, 10.0 ** e * 1.25)  # room below 0 for the markers of lines on 0
    ax.yaxis.set_major_locator(DecadeLocator(step))
    ax.yaxis.set_major_formatter(FuncFormatter(eng_tick))
    ax.yaxis.set_minor_locator(DecadeLocator(1))


class DecadeLocator(Locator):
    """0 and every *step*-th power of ten inside the view (for symlog axes)."""

    def __init__(self, step: int = 1):
        self.step = step

    def __call__(self) -> list[float]:
        lo, hi = self.axis.get_view_interval()
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        top = int(np.floor(np.log10(max(vmax, 1))))
        vals = [0.0] + [10.0 ** e for e in range(0, top + 1) if e % self.step == 0]
        return [v for v in vals if vmin <= v <= vmax]
