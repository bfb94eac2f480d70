"""Figure 7: the emulator's outcome table, one coloured cell per (int3 handler strategy, site kind).

:func:`outcome_grid` draws what each trapped call did (correct, drops,
violation, crash, deadlock) with the int3 entry of
``arch/x86/entry/entry_32.S`` (i386: v5.1, and v5.3 with the stack gap of
3c88c692c287) or ``arch/x86/entry/entry_64.S`` (x86_64: v5.1, and v5.2 with
the gap of 2700fefdb2d9), one panel per (arch, entry);
:func:`outcome_cell` is one cell's class and text, :func:`outcome_panels`
the panels drawn by default. The table is the emulator's
(:mod:`workbench.emulate`); the look is :mod:`workbench.figures.style`'s.
A table that lacks the columns raises
:class:`workbench.base.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.patches import Patch

from workbench.base.errors import ConfigError
from workbench.base.vocabulary import ENTRIES_BY_ARCH
from workbench.emulate.scenario import load_scenario
from workbench.figures.style import (OKABE_ITO, STRATEGY_ORDER, need_columns, new_figure, strategy_style,
                                     styled)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

__all__ = ["outcome_cell", "outcome_grid", "outcome_panels"]

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


def outcome_cell(row: dict | None, compact: bool = False) -> tuple[str, str]:
    """(class, text) of one outcome-table cell; *row* holds per-trapped-call means (fractions
    0..1 of trapped calls, ``trapped_placements`` a count) or is ``None`` (the strategy never traps).

    *compact* puts a fraction on a line of its own (narrow cells).
    """
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
    return cls, text + f"\n(n={int(row['trapped_placements'])})"


def _cell_row(rows: pd.DataFrame) -> dict | None:
    """One cell's numbers: the row, or the rows of several trap sites weighted by trapped calls; None if none."""
    if len(rows) > 1:
        w = rows["trapped_placements"].to_numpy(float)
        row = {col: float(np.average(rows[col].astype(float), weights=w))
               for col in ("violation", "dropped_tracer", "dropped_livepatch", "spurious",
                           "crash", "deadlock", "delay_traps") if col in rows}
        row["trapped_placements"] = int(w.sum())
        return row
    return rows.iloc[0].to_dict() if len(rows) else None


def outcome_panels(table: pd.DataFrame, entries: Iterable[str] = ("v5.1", "v5.3")) -> list[tuple[str, str]]:
    """The ``(arch, entry)`` panels :func:`outcome_grid` draws by default: i386's *entries*, then
    each x86_64 entry (:data:`workbench.base.vocabulary.ENTRIES_BY_ARCH`) the table has rows of.
    Rows without an ``arch`` are i386's."""
    arch = _table_arches(table)
    have = set(zip(arch, table["entry"].astype(str), strict=True))
    return [("i386", e) for e in entries] + [("x86_64", e) for e in ENTRIES_BY_ARCH["x86_64"] if ("x86_64", e) in have]


def _table_arches(table: pd.DataFrame) -> np.ndarray:
    if "arch" not in table.columns:
        return np.full(len(table), "i386", dtype=object)
    return table["arch"].astype(object).where(table["arch"].notna(), "i386").astype(str).to_numpy()


def _scenario_heading(scenario: str, arch: str, kind: str) -> str:
    """A column heading: the scenario's short name, the kernel it is on (its arch) and the site kind
    (the ``livepatched`` kind of a scenario whose regs-saving ops are probes reads ``probed``)."""
    try:
        sc = load_scenario(str(scenario))
        tag = sc.kernel_on(arch)
        if kind == "livepatched" and not any(o.kind == "livepatch" for o in sc.ops):
            kind = "probed"
    except ConfigError:  # a heading never fails on a scenario it cannot read
        tag = arch
    return f"{_SCENARIO_SHORT.get(scenario, scenario)}\n({tag})\n{kind}"


@styled
def outcome_grid(table: pd.DataFrame, entries: Iterable[str] = ("v5.1", "v5.3"),
                 strategies: Iterable[str] = STRATEGY_ORDER, site_kinds: Iterable[str] = ("livepatched", "ordinary"),
                 size: str | None = None, panels: list[tuple[str, str]] | None = None) -> Figure:
    """The emulator's per-trapped-call outcomes: strategy (rows) x site kind (columns).

    One panel per (arch, kernel int3 entry), one row of panels per arch
    (*panels*, default :func:`outcome_panels`: i386's *entries*, v5.1
    with pt_regs on the interrupted stack and v5.3 with the stack gap;
    then x86_64's v5.1, without a gap, and v5.2, with the gap of
    2700fefdb2d9, when the table has their rows; rows without an ``arch``
    column are i386's). Each panel's title names its arch and entry, each
    column its scenario and the kernel it is on. Each cell names what a
    trapped call did (correct, drops, violation, crash, deadlock, and
    spin's re-traps) and is coloured by the worst of them; ``n`` is the
    number of trapped calls (weighted schedules) behind it. A strategy
    with no row never traps; a site kind with no row of a strategy that
    traps elsewhere is one the update does not patch (on x86_64 an ordinary
    site of a probe scenario keeps calling the tracer's own trampoline). A table of several scenarios gets one column
    per (scenario, site kind), scenarios in the table's order. *size*
    defaults to ``grid`` for one row of panels and ``grid_tall`` for two.
    Raises :class:`ConfigError` if the table lacks the columns or has no
    row of a panel asked for, or of one of its scenarios there (an empty
    column would read "never traps").
    """
    need_columns(table, ["entry", "strategy", "site_kind", "trapped_placements", "violation", "dropped_tracer",
                  "dropped_livepatch", "spurious", "crash"], "outcome_grid")
    panels = outcome_panels(table, entries) if panels is None else [tuple(p) for p in panels]
    arch_of = _table_arches(table)
    scenarios = list(dict.fromkeys(table["scenario"])) if "scenario" in table else [None]
    for a, e in panels:  # every panel has a table of each scenario: an empty column would read "never traps"
        here = table[(arch_of == a) & (table["entry"].astype(str) == e).to_numpy()]
        lacking = [None] if not len(here) else [sc for sc in scenarios if sc is not None
                                                and not (here["scenario"] == sc).any()]
        if lacking:
            raise ConfigError(f"outcome_grid: the table has no rows of {f'scenario {lacking[0]}, ' if lacking[0] else ''}"
                              f"arch {a}, entry {e}; pass its outcome table or leave that panel out")
    rows_of = list(dict.fromkeys(a for a, _ in panels))
    grid = [[p for p in panels if p[0] == a] for a in rows_of]
    ncols = max(len(g) for g in grid)
    fig, axes = new_figure(size or ("grid" if len(rows_of) == 1 else "grid_tall"), len(rows_of), ncols,
                           sharey=True)
    scen = ", ".join(sorted(s for s in scenarios if s)) if len(scenarios) == 1 else ""
    columns = [(sc, k) for sc in scenarios for k in site_kinds]
    small = len(columns) > 2
    for i, row_panels in enumerate(grid):
        for j in range(len(row_panels), ncols):  # a shorter row: no empty frame
            axes[i][j].set_visible(False)
        for ax, (arch, entry) in zip(axes[i], row_panels, strict=False):  # a shorter row leaves axes over
            t = table[(arch_of == arch) & (table["entry"].astype(str) == entry).to_numpy()]
            ax.set_xlim(0, len(columns))
            ax.set_ylim(len(strategies), 0)
            ax.grid(False)
            for r, s in enumerate(strategies):
                for c, (sc, k) in enumerate(columns):
                    rows = t[(t["strategy"] == s) & (t["site_kind"] == k)]
                    if sc is not None:
                        rows = rows[rows["scenario"] == sc]
                    cls, text = outcome_cell(_cell_row(rows), compact=small)
                    if not len(rows) and (t["strategy"] == s).any():  # the strategy traps, elsewhere
                        text = "never traps\n(not patched)"
                    ax.add_patch(_rect(c, r, _CLASS_COLOUR[cls]))
                    ax.text(c + 0.5, r + 0.5, text, ha="center", va="center", fontsize=5.0 if small else 6.5,
                            color=_CLASS_TEXT[cls], linespacing=1.15)
            ax.set_xticks(np.arange(len(columns)) + 0.5,
                          [f"{k} site" if len(scenarios) == 1 else _scenario_heading(sc, arch, k)
                           for sc, k in columns], fontsize=5.5 if small else None)
            ax.xaxis.set_ticks_position("top")
            ax.xaxis.set_label_position("top")
            ax.tick_params(length=0)
            ax.set_yticks(np.arange(len(strategies)) + 0.5, [strategy_style(s)[2] for s in strategies])
            ax.set_title(f"{arch}: int3 entry {entry}" + _ENTRY_NOTE.get((arch, entry), ""), pad=4)
            ax.set_xlabel("site kind of the trapped call")
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[i][0].set_ylabel("int3 handler strategy")
    handles = [Patch(facecolor=_CLASS_COLOUR[k], edgecolor="#777777", linewidth=0.4, label=k)
               for k in ("correct", "drops", "violation", "crash", "deadlock", "never traps")]
    fig.legend(handles=handles, loc="outside lower center", ncols=6, title_fontsize=6.5, alignment="center",
               title=(f"worst outcome of a trapped call ({f'scenario {scen}, ' if scen else ''}emulated); "
                      "n = trapped placements (weighted schedules) per cell;\n"
                      "×f = on a share f of those placements (×0.80: on 80%; no ×: on all of them)"))
    return fig


#: what each (arch, kernel int3 entry) is, with the commit that changed it
_ENTRY_NOTE = {
    ("i386", "v5.1"): "\n(before 3c88c692c287: no stack gap)",
    ("i386", "v5.3"): "\n(3c88c692c287: stack gap)",
    ("x86_64", "v5.1"): "\n(before 2700fefdb2d9: no gap)",
    ("x86_64", "v5.2"): "\n(2700fefdb2d9: gap for call emulation)",
}

#: short column headings of the scenarios in figure 7 (the kernel each is on follows)
_SCENARIO_SHORT = {"seed": "seed", "tracer_add_probe": "add probe", "tracer_add_livepatch": "add livepatch"}


def _rect(c: float, r: float, colour: str) -> Rectangle:
    from matplotlib.patches import Rectangle  # start-up: matplotlib, only when a figure is drawn

    return Rectangle((c + 0.03, r + 0.04), 0.94, 0.92, facecolor=colour, edgecolor="#777777",
                     linewidth=0.4)
