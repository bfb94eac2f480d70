"""Human output of the command line: times with units a person reads, counts to 4 digits.

JSON output and data files keep base units (ns); only tables printed for a
person go through here. ``4.30787e+09`` in a ``patch_ns`` column prints as
``4.31 s``, a count of ``8957693.5`` as ``8.958M``. No kernel file is modelled here.
"""

from __future__ import annotations

import math
import textwrap

import pandas as pd

from workbench.base.provenance import time_unit
from workbench.base.units import human_count, human_ns
from workbench.ui.report_tables import fmt_number, time_scale

__all__ = ["SHORT", "grouped_table", "human_table", "human_value", "readable"]

_SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def human_value(column: str, value) -> str:
    """*value* of *column* as text: a time (named ``_ns``/``_ms``/...) with a unit, else 4 digits."""
    if isinstance(value, (bool, str)) or value is None:
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    unit = time_unit(column)
    if unit in _SCALE and math.isfinite(v):
        return human_ns(v * _SCALE[unit])
    if float(v).is_integer() and abs(v) < 1e4:
        return str(int(v))
    return human_count(v, 4)  # 8.958M, not 8.958e+06


def human_table(frame: pd.DataFrame) -> str:
    """*frame* as an aligned text table with :func:`human_value` cells (time columns with units)."""
    cells = frame.copy().astype(object)
    for c in frame.columns:
        cells[c] = [human_value(str(c), v) for v in frame[c]]
    return cells.to_string(index=False)


def readable(frame: pd.DataFrame):
    """*frame* for reading in a notebook (a pandas ``Styler``; the frame itself is unchanged).

    Each time column is shown in one unit, named in its header (``patch_ns_mean`` reads ``patch_mean
    (ms)``); other numbers get thousands separators or four significant digits, never ``1.03e+06``.
    """
    names, formats = {}, {}
    for c in frame.columns:
        unit = time_unit(str(c))
        if unit in _SCALE and pd.api.types.is_numeric_dtype(frame[c]):
            div, shown = time_scale(frame[c] * _SCALE[unit])
            k = _SCALE[unit] / div
            formats[c] = lambda v, k=k: fmt_number(v * k)
            names[c] = f"{str(c).replace('_' + unit, '')} ({shown})"
        elif pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            formats[c] = fmt_number
    styler = frame.style.format(formats).hide(axis="index")
    return styler.relabel_index([names.get(c, str(c)) for c in frame.columns], axis="columns")


#: short headers for long column names in tables printed at 100 columns (``--wide`` prints the names)
SHORT = {"trapped_placements": "placements", "violation": "viol", "dropped_tracer": "drop_tr",
         "dropped_livepatch": "drop_lp", "spurious": "spur", "deadlock": "dead", "delay_traps": "retraps",
         "tracer_runs": "tracer", "livepatch_ran": "klp", "crash_reason": "reason"}


def grouped_table(frame: pd.DataFrame, group=("strategy",), headings=None, drop=()) -> str:
    """*frame* as text for a 100-column terminal: a block per *group* value under its heading
    (``headings[key]`` adds to it), columns holding one value in every row said once above, long
    names shortened (:data:`SHORT`, with a key below), crash reasons as footnotes. *drop* leaves
    columns out (shown elsewhere, e.g. in the headings)."""
    group = [g for g in group if g in frame.columns]
    const = [c for c in frame.columns if c not in group and c not in drop and len(frame) > 1
             and frame[c].astype(str).nunique() == 1]
    cols = [c for c in frame.columns if c not in group and c not in const and c not in drop]
    cells = frame.copy()
    notes: dict = {}
    if "crash_reason" in cols:
        reasons = [r for r in dict.fromkeys(cells["crash_reason"].astype(str)) if r]
        notes = {r: f"[{i}]" for i, r in enumerate(reasons, 1)}
        cells["crash_reason"] = cells["crash_reason"].astype(str).map(lambda r: notes.get(r, ""))
    for c in cols:
        if pd.api.types.is_float_dtype(cells[c]):
            cells[c] = [human_value(c, v) for v in cells[c]]
    out = []
    if const:
        out.append(textwrap.fill("every row: " + ", ".join(f"{c} {human_value(c, frame[c].iloc[0])}"
                                                          for c in const), 100, subsequent_indent="  "))
    blocks = cells.groupby(group, sort=False) if group else [((), cells)]
    for key, sub in blocks:
        key = key if isinstance(key, tuple) else (key,)
        head = " ".join(map(str, key))
        extra = (headings or {}).get(key[0] if len(key) == 1 else key, "")
        out.append(f"\n{head}{': ' + extra if extra else ''}")
        text = sub[cols].rename(columns=SHORT).to_string(index=False)
        out += ["  " + line for line in text.splitlines()]
    used = [f"{SHORT[c]} = {c}" for c in cols if c in SHORT]
    if used:
        out.append("\n" + textwrap.fill("columns: " + ", ".join(used), 100, subsequent_indent="  "))
    out += [f"{n} {r}" for r, n in notes.items()]
    return "\n".join(out)
