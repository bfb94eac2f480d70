"""Human output of the command line: times with units a person reads, counts to 4 digits.

JSON output and data files keep base units (ns); only tables printed for a
person go through here. ``4.30787e+09`` in a ``patch_ns`` column prints as
``4.31 s``, a count of ``8957693.5`` as ``8.958M``. No kernel file is modelled here.
"""

from __future__ import annotations

import math

import pandas as pd

from workbench.base.provenance import time_unit
from workbench.base.units import human_count, human_ns
from workbench.ui.report_tables import fmt_number, time_scale

__all__ = ["human_table", "human_value", "readable"]

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
