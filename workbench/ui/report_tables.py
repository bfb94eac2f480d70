"""The report's tables, sized for a page: units in the headers, readable numbers, long tables summarised.

Models no kernel file: it lays out the summary tables of the figures job
(``data/summary/*.csv``) for :mod:`workbench.ui.report`. Every table is
shown in a form that fits an A4 page and a laptop screen:

* columns holding one value for every row leave the table for a line above
  it ("for every row: ...");
* a metric's ``_mean`` with its ``_lo``/``_hi`` is one column, ``mean ±
  half the 95% interval``; ``_se``/``_cf`` stay in the CSV;
* each header names its unit (time columns get one unit per column, chosen
  from its values: ``patch (ms)``), and numbers are written with thousands
  separators or four significant digits, never ``1.034418e+06``;
* a table longer than :data:`LONG_ROWS` rows is shown as the summaries of
  :data:`SUMMARIES` (a pivot of a few headline metrics over the swept
  parameter, or a grouped share), with the full CSV linked beside the
  report.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import pandas as pd

from workbench.base.provenance import time_unit
from workbench.base.units import human_ns
from workbench.base.vocabulary import COLUMNS

__all__ = ["LONG_ROWS", "SUMMARIES", "Summary", "fmt_number", "table_html", "time_scale"]

#: a table with more rows than this is summarised in the report (the CSV has every row)
LONG_ROWS = 30
#: the provenance the report's head already gives, left out of every table
_PROVENANCE = ("code_version", "workbench_version")
#: columns that are parameters of a row (the rest are measured)
_KEYS = ("scenario", "entry", "strategy", "batching", "poke_method", "site_kind", "cpus", "sync_round_ns", "n_sites",
         "trials", "metric", "quantity", "kind", "unit", "trap_site", "trap_phase", "seed", "grid", "run")
_TIME_STEPS = ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns"))
_UNIT_WORDS = {"count": "count", "1": "ratio", "calls/s": "calls/s", "bool": "yes/no"}


@dataclass(frozen=True)
class Summary:
    """How a long table is summarised: *values* pivoted to *index* rows x *columns* columns, or, with
    *weight*, the *weight*-weighted share of rows per *index* group (an outcome table)."""

    index: tuple
    values: tuple
    columns: str | None = None
    weight: str | None = None
    note: str = ""


#: the long summary tables and their report view
SUMMARIES = {
    "drops_vs_cpus": Summary(("arch", "scenario", "strategy", "batching"),
                             ("violations_mean", "dropped_tracer_mean", "dropped_livepatch_mean", "patch_ns_mean"),
                             columns="cpus"),
    "drops_vs_timing": Summary(("arch", "scenario", "strategy", "batching"),
                               ("violations_mean", "dropped_tracer_mean", "dropped_livepatch_mean", "patch_ns_mean"),
                               columns="sync_round_ns"),
    "heatmap_skip": Summary(("arch", "scenario", "cpus"), ("violations_mean", "dropped_livepatch_mean"),
                            columns="sync_round_ns"),
    "tradeoff": Summary(("arch", "scenario", "strategy"),
                        ("violations_per_patch", "dropped_per_patch", "stall_cpu_ns", "patch_ns"), columns="cpus"),
    "outcomes": Summary(("arch", "scenario", "entry", "strategy", "site_kind"),  # v5.1 is on both arches
                        ("violation", "dropped_tracer", "dropped_livepatch", "crash", "deadlock"),
                        weight="trapped_placements",
                        note="share of the trapped instruction placements (weighted schedules) with each "
                             "outcome, per strategy and site kind; the CSV has one row per trap site and phase"),
}


def fmt_number(v) -> str:
    """A number for a reader: ``1,116,229``, ``185.1``, ``0.0342``, ``3.1×10⁻⁵``, ``–`` for a missing one."""
    if v is None or isinstance(v, str):
        return "" if v is None else v
    if isinstance(v, bool):
        return "yes" if v else "no"
    x = float(v)
    if not math.isfinite(x):
        return "–" if math.isnan(x) else str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e3 or (x.is_integer() and abs(x) < 1e15):
        return f"{x:,.0f}"
    if abs(x) >= 1e-3:
        return f"{x:.4g}"
    mant, exp = f"{x:.2e}".split("e")
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{mant}×10{str(int(exp)).translate(sup)}"


def time_scale(values) -> tuple[float, str]:
    """``(divisor, unit)`` that shows nanosecond *values* in one unit: the one their median needs."""
    s = pd.Series(values, dtype="float64").abs()
    s = s[(s > 0) & s.map(math.isfinite)]
    if s.empty:
        return 1.0, "ns"
    med = float(s.median())
    return next(((d, u) for d, u in _TIME_STEPS if med >= d), (1.0, "ns"))


def _ns_per(column: str) -> float | None:
    """Nanoseconds per unit of *column* if it is a time column, else None."""
    return {"ns": 1.0, "us": 1e3, "ms": 1e6}.get(time_unit(column) or "")


def _unit_word(column: str) -> str:
    base = column
    for s in ("_mean", "_lo", "_hi", "_cf", "_se"):
        if base.endswith(s):
            base = base[: -len(s)]
    term = COLUMNS.get(column) or COLUMNS.get(base)
    if term is not None and "in the row's unit" in term.meaning:
        return "row's unit"
    return _UNIT_WORDS.get(term.unit, "") if term is not None else ""


def _head(name: str, unit: str, meaning: str = "", key: bool = False) -> str:
    """A header cell: the column name (breakable at underscores) over its unit."""
    shown = html.escape(name).replace("_", "_<wbr>")
    title = f" title='{html.escape(meaning)}'" if meaning else ""
    u = f"<br><span class='u'>{html.escape(unit)}</span>" if unit else ""
    return f"<th{title}{' class=key' if key else ''}>{shown}{u}</th>"


def _meaning(column: str) -> str:
    term = COLUMNS.get(column)
    return term.meaning if term is not None else ""


def _constants(frame: pd.DataFrame, keep=()) -> tuple[pd.DataFrame, dict]:
    """*frame* without the columns (but *keep*) that hold one value in every row, and those values."""
    const = {}
    for c in list(frame.columns):
        if c in _PROVENANCE:
            frame = frame.drop(columns=c)
        elif c not in keep and len(frame) > 1 and frame[c].nunique(dropna=False) == 1:
            const[c] = frame[c].iloc[0]
            frame = frame.drop(columns=c)
    return frame, const


def _const_line(const: dict) -> str:
    if not const:
        return ""
    parts = []
    for c, v in const.items():
        ns = _ns_per(c)
        text = human_ns(float(v) * ns) if ns and not isinstance(v, str) else fmt_number(v)
        parts.append(f"<span class='k'>{html.escape(c)}</span> {html.escape(text)}")
    return "<p class='const'>For every row: " + " · ".join(parts) + "</p>"


def _plain(frame: pd.DataFrame, note: str = "", units: dict | None = None) -> str:
    """*frame* as a compact table: constants above, mean ± 95% in one cell, one unit per time column
    (*units* names the unit of columns whose vocabulary unit does not fit this view)."""
    # _lo/_hi are folded into the _mean cell; _se/_cf are left to the CSV
    stats = [c for c in frame.columns
             if c.endswith(("_lo", "_hi", "_se", "_cf")) and c.rsplit("_", 1)[0] + "_mean" in frame.columns]
    frame, const = _constants(frame.drop(columns=[c for c in stats if not c.endswith(("_lo", "_hi"))]),
                              keep=[c for c in stats if c.endswith(("_lo", "_hi"))])
    cols, heads, cells = [c for c in frame.columns if c not in stats], [], []
    for c in cols:
        ns = _ns_per(c)
        # a metric's mean is shown under the metric's name ("z_mean", a term of its own, keeps its name)
        base = c[:-5] if c.endswith("_mean") and c[:-5] in COLUMNS else c
        lo, hi = f"{base}_lo", f"{base}_hi"
        interval = c.endswith("_mean") and lo in frame.columns and hi in frame.columns
        if ns is not None:
            div, unit = time_scale(frame[c] * ns)
            scale = ns / div
        else:
            scale, unit = 1.0, (units or {}).get(c) or _unit_word(c)
        label = base
        if ns is not None:  # the header gives the unit: "patch (ms)", not "patch_ns (ms)"
            label = label.rsplit("_", 1)[0]
        kind = "mean ± 95%" if interval else ("mean" if base != c else "")
        text_col = frame[c].dtype == object
        heads.append(_head(label, ", ".join(x for x in (unit, kind) if x), _meaning(c), key=text_col))

        def cell(i, c=c, scale=scale, interval=interval, lo=lo, hi=hi):
            v = frame[c].iloc[i]
            if isinstance(v, str):
                return f"<span class='txt'>{html.escape(v)}</span>"
            if c in _KEYS and not _ns_per(c):
                return html.escape(fmt_number(v))
            text = fmt_number(float(v) * scale)
            if interval:
                half = (float(frame[hi].iloc[i]) - float(frame[lo].iloc[i])) / 2 * scale
                if half > 0:
                    text += f" <span class='pm'>± {fmt_number(float(f'{half:.2g}'))}</span>"
            return text
        cells.append(cell)
    rows = "".join("<tr>" + "".join(f"<td>{f(i)}</td>" for f in cells) + "</tr>" for i in range(len(frame)))
    return (_const_line(const) + (f"<p class='note'>{html.escape(note)}</p>" if note else "")
            + f"<div class='tw'><table class='data'><thead><tr>{''.join(heads)}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def _pivot(frame: pd.DataFrame, spec: Summary) -> str:
    frame, const = _constants(frame)
    keys = [k for k in spec.index if k in frame.columns]
    # any other parameter that varies stays a row key, so no two rows are averaged together
    keys += [k for k in _KEYS if k in frame.columns and k not in keys and k != spec.columns]
    col = spec.columns
    parts = [_const_line(const)]
    col_values = sorted(frame[col].unique()) if col in frame.columns else [None]
    col_ns = _ns_per(col) if col else None
    col_heads = "".join(_head(human_ns(float(v) * col_ns) if col_ns else fmt_number(v), "") for v in col_values)
    for value in spec.values:
        if value not in frame.columns:
            continue
        ns = _ns_per(value)
        base = value[:-5] if value.endswith("_mean") else value
        if ns is not None:
            div, unit = time_scale(frame[value] * ns)
            scale = ns / div
        else:
            scale, unit = 1.0, _unit_word(value)
        table = frame.pivot_table(index=keys, columns=col, values=value, aggfunc="first", sort=False)
        what = _meaning(base) or base
        stat = ", Monte Carlo mean" if value.endswith("_mean") else ""
        shown = base.rsplit("_", 1)[0] if ns is not None else base
        parts.append(f"<h4>{html.escape(shown)} <span class='u'>({html.escape(unit)}{stat})</span> by "
                     f"{html.escape(col)}</h4><p class='note'>{html.escape(what)}</p>")
        head = "".join(_head(k, "", key=frame[k].dtype == object) for k in keys) + col_heads
        body = ""
        for idx, row in table.iterrows():
            idx = idx if isinstance(idx, tuple) else (idx,)
            body += ("<tr>" + "".join(f"<td class='key'>{html.escape(fmt_number(k))}</td>" if isinstance(k, str)
                                      else f"<td>{html.escape(fmt_number(k))}</td>" for k in idx)
                     + "".join(f"<td>{fmt_number(row.get(v, float('nan')) * scale)}</td>" for v in col_values)
                     + "</tr>")
        spanner = (f"<tr><th colspan='{len(keys)}'></th><th colspan='{len(col_values)}' class='span'>"
                   f"{html.escape(col)} →</th></tr>")
        parts.append(f"<div class='tw'><table class='data'><thead>{spanner}<tr>{head}</tr></thead>"
                     f"<tbody>{body}</tbody></table></div>")
    return "".join(parts)


def _shares(frame: pd.DataFrame, spec: Summary) -> str:
    keys = [k for k in spec.index if k in frame.columns]
    w = frame[spec.weight].astype(float)
    out = frame[keys].copy()
    for v in spec.values:
        out[v] = frame[v].astype(float) * w
    out[spec.weight] = w
    g = out.groupby(keys, sort=False).sum(numeric_only=True).reset_index()
    for v in spec.values:
        g[v] = g[v] / g[spec.weight].where(g[spec.weight] > 0)
    return _plain(g, note=spec.note, units={v: "share" for v in spec.values})


def table_html(name: str, frame: pd.DataFrame, csv_href: str) -> str:
    """The report's section body for the summary table *name*: its view and a link to the full CSV."""
    spec = SUMMARIES.get(name.removesuffix("_quick"))
    link = (f"<p class='src'>Full table: <a href='{html.escape(csv_href)}'>{html.escape(csv_href)}</a> "
            f"({len(frame):,} rows × {len(frame.columns)} columns, full precision, times in ns).</p>")
    if len(frame) > LONG_ROWS and spec is not None:
        needed = set(spec.index) | ({spec.columns} if spec.columns else set()) | ({spec.weight} - {None})
        if needed <= set(frame.columns) and any(v in frame.columns for v in spec.values):
            view = _shares(frame, spec) if spec.weight else _pivot(frame, spec)
            return link + view
    if len(frame) > LONG_ROWS:
        return link + _plain(frame.head(LONG_ROWS), note=f"the first {LONG_ROWS} of {len(frame):,} rows")
    return link + _plain(frame)
